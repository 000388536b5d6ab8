-- ip_log: a session's IP log, for a legal request (SPEC §3.3).
-- KEYS: the session's keys (hash, ips, ipz).
-- Returns false when the session is gone, else {the `ips` hash's fields
-- and values (first seen, and '#dropped'), the addresses with their last
-- seen times}. Bounded by the IP log's cap.
local s = session_keys(1)
if redis.call('HEXISTS', s.hash, 'm') == 0 then return false end
return { redis.call('HGETALL', s.ips), redis.call('ZRANGE', s.ipz, 0, -1, 'WITHSCORES') }
