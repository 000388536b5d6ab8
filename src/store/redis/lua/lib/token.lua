-- The binding of one continuity token to its session (SPEC §3.7), under a
-- key named by the token's keyed hash (never the token): '<state>:<id>',
-- state 't' (temporary) or 'p' (permanent). It lives like its session: the
-- idle TTL for a temporary one, none or the retention for a permanent one.
-- Being its own slot on Redis Cluster, each operation is a call of its own.
local TOKEN_KEY = KEYS[1]

-- The binding's state and session id, or nil.
local function binding()
  local value = redis.call('GET', TOKEN_KEY)
  if not value then return nil end
  return string.match(value, '^(%a):(.+)$')
end

-- Keeps the binding alive as a session in `state` is kept.
local function keep(state, idle, retention)
  if state == 't' then
    redis.call('PEXPIRE', TOKEN_KEY, idle)
  elseif tonumber(retention) > 0 then
    redis.call('PEXPIRE', TOKEN_KEY, retention)
  end
end
