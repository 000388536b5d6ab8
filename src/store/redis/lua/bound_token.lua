-- bound_token: the hash of the continuity token a session is bound to, read
-- before an agent deletion so the binding goes first (SPEC §3.7): a deletion
-- run again after a failure still finds it.
-- KEYS: session hash. Returns the hash, or ''.
return redis.call('HGET', KEYS[1], 't') or ''
