-- token_session: the binding of a continuity token, read by a visit with
-- the token, which keeps it alive (lib/token.lua).
-- KEYS: the token's key. ARGV: idle TTL (ms), retention (ms, 0: none).
-- Returns {state, session id}, or false.
local idle, retention = ARGV[1], ARGV[2]
local state, id = binding()
if not id then return false end
keep(state, idle, retention)
return { state, id }
