-- reset: a browser unbinds from its session (SPEC §3.5); a temporary
-- session is deleted with it, a permanent one stays for the agents.
-- KEYS: session hash, IP log. Returns 1 when deleted.
local meta = redis.call('HGET', KEYS[1], 'm')
if meta and string.byte(meta, 1) == 116 then -- 't': temporary
  redis.call('DEL', KEYS[1], KEYS[2])
  return 1
end
return 0
