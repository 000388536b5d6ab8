-- reset: a browser unbinds from its session (SPEC §3.5); a temporary
-- session is deleted with it, a permanent one stays for the agents.
-- KEYS: session hash, IP log. Returns {1, its continuity token's hash or
-- ''} when deleted, {0, ''} when not.
local meta = redis.call('HGET', KEYS[1], 'm')
if meta and string.byte(meta, 1) == 116 then -- 't': temporary
  local token = redis.call('HGET', KEYS[1], 't') or ''
  redis.call('DEL', KEYS[1], KEYS[2])
  return {1, token}
end
return {0, ''}
