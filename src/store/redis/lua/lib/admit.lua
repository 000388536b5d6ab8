-- The new-session limit of one client network (SPEC §3.6). `key` is a set
-- of the creations admitted in the current window; it expires with the
-- window. A creation is named by a random `member`, so running the same
-- creation twice (a retry after a lost reply) counts it once.
-- Returns nil when the creation is admitted, else the ms until the window
-- ends.
local function admit(key, member, max, window)
  if redis.call('SISMEMBER', key, member) == 1 then return nil end
  local admitted = redis.call('SCARD', key)
  if admitted >= max then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then
      redis.call('PEXPIRE', key, window)
      ttl = tonumber(window)
    end
    return math.max(ttl, 1)
  end
  redis.call('SADD', key, member)
  if admitted == 0 then redis.call('PEXPIRE', key, window) end
  return nil
end
