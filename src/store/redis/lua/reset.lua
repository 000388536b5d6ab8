-- reset: a browser unbinds from its session (SPEC §3.5); a temporary
-- session is deleted with it, a permanent one stays for the agents.
-- KEYS: session hash, IP log. Returns 1 when deleted.
if redis.call('HGET', KEYS[1], 'm:state') == 't' then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 1
end
return 0
