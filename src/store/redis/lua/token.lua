-- token: the binding of one continuity token to its session (SPEC §3.7).
-- The key is named by the token's keyed hash (never the token); its value
-- is '<state>:<session id>', state 't' (temporary) or 'p' (permanent), and
-- it lives like its session: the idle TTL for a temporary one (slid by the
-- accesses that carry the token), none or the retention for a permanent one.
-- Being its own slot on Redis Cluster, it is a call of its own.
-- KEYS: the token's key.
-- ARGV[1], the operation, then its arguments:
--   'get', idle TTL (ms), retention (ms, 0: none): the bound session id, or
--     false; slides the key as an access slides its session.
--   'bind', expected id ('' for none), new id, state, idle TTL (ms),
--     retention (ms, 0: none): binds the new session unless another one was
--     bound since `expected` was read; returns the id bound now.
--   'persist', id, retention (ms, 0: none): the session became permanent.
--   'keep', id, state, idle TTL (ms), retention (ms, 0: none): the session
--     was accessed without the token; the binding lives on with it.
--   'drop', id: the session ended; the binding ends with it.
local op = ARGV[1]
local value = redis.call('GET', KEYS[1])
local state, bound = nil, nil
if value then state, bound = string.match(value, '^(%a):(.+)$') end
local function keep(s, idle, retention)
  if s == 't' then
    redis.call('PEXPIRE', KEYS[1], idle)
  elseif tonumber(retention) > 0 then
    redis.call('PEXPIRE', KEYS[1], retention)
  end
end
if op == 'get' then
  if not bound then return false end
  keep(state, ARGV[2], ARGV[3])
  return bound
elseif op == 'bind' then
  if bound and bound ~= ARGV[2] and bound ~= ARGV[3] then return bound end
  -- A binding made permanent meanwhile stays permanent.
  local s = ARGV[4]
  if bound == ARGV[3] and state == 'p' then s = 'p' end
  redis.call('SET', KEYS[1], s .. ':' .. ARGV[3])
  keep(s, ARGV[5], ARGV[6])
  return ARGV[3]
elseif op == 'persist' then
  if bound == ARGV[2] then
    redis.call('SET', KEYS[1], 'p:' .. bound)
    keep('p', 0, ARGV[3])
  end
  return 1
elseif op == 'keep' then
  if bound == ARGV[2] then
    if state ~= ARGV[3] then redis.call('SET', KEYS[1], ARGV[3] .. ':' .. bound) end
    keep(ARGV[3], ARGV[4], ARGV[5])
  end
  return 1
elseif op == 'drop' then
  if bound == ARGV[2] then redis.call('DEL', KEYS[1]) end
  return 1
end
return redis.error_reply('unknown token operation')
