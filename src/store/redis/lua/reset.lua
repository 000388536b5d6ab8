-- reset: a browser unbinds from its session (SPEC §3.5); a temporary
-- session is deleted with it, a permanent one stays for the agents.
-- KEYS: the session's keys (hash, ips, ipz).
-- Returns {1, the hash of its continuity token or ''} when deleted (the
-- caller drops the token's binding), {0, ''} when not.
local s = session_keys(1)
local meta = redis.call('HGET', s.hash, 'm')
if meta and is_temporary(meta) then
  local token = redis.call('HGET', s.hash, 't') or ''
  redis.call('DEL', s.hash, s.ips, s.ipz)
  return { 1, token }
end
return { 0, '' }
