-- ip_log: a session's IP log, for a legal request (SPEC §3.3).
-- KEYS: session hash, IP log. Returns false when the session is gone.
if redis.call('HEXISTS', KEYS[1], 'm') == 0 then return false end
return redis.call('HGETALL', KEYS[2])
