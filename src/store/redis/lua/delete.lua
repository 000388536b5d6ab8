-- delete: agent deletion of a session with its data and IP log (SPEC §3.5).
-- Its continuity-token binding is dropped before (see bound_token.lua).
-- KEYS: session hash, IP log. Returns the number of keys deleted.
return redis.call('DEL', KEYS[1], KEYS[2])
