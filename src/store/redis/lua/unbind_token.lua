-- unbind_token: drops a continuity token's binding if it names the session
-- that ended (lib/token.lua).
-- KEYS: the token's key. ARGV: the session id.
-- Returns 1.
local id = ARGV[1]
local _, current = binding()
if current == id then redis.call('DEL', TOKEN_KEY) end
return 1
