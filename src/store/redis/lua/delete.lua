-- delete: agent deletion of a session with its data and IP log (SPEC §3.5).
-- KEYS: the session's keys (hash, ips, ipz).
-- Returns {1 if the session existed else 0, the hash of its continuity
-- token or ''} (the caller drops the token's binding).
local s = session_keys(1)
local token = redis.call('HGET', s.hash, 't') or ''
local existed = redis.call('EXISTS', s.hash)
redis.call('DEL', s.hash, s.ips, s.ipz)
return { existed, token }
