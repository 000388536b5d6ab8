-- bind_token: binds a continuity token to a session, unless it was bound
-- to another one since the caller read it (compare and set). A binding to
-- the same session that is permanent stays permanent.
-- KEYS: the token's key.
-- ARGV: expected id ('' for none), new id, state ('t'/'p'), idle TTL (ms),
-- retention (ms, 0: none).
-- Returns the id bound afterwards: the new one, or the one that won.
local expected, id, state, idle, retention = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local current_state, current = binding()
if current and current ~= expected and current ~= id then return current end
if current == id and current_state == 'p' then state = 'p' end
redis.call('SET', TOKEN_KEY, state .. ':' .. id)
keep(state, idle, retention)
return id
