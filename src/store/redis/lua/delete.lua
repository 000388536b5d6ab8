-- delete: agent deletion of a session with its data and IP log (SPEC §3.5).
-- KEYS: session hash, IP log. Returns {the number of keys deleted, the
-- hash of the continuity token it was bound to or ''}.
local token = redis.call('HGET', KEYS[1], 't') or ''
return {redis.call('DEL', KEYS[1], KEYS[2]), token}
