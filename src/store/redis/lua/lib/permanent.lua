-- What a permanent session (one with a conversation) keeps: KEYS[1] is its
-- hash, KEYS[2] its IP log.

-- Records an access from `ip` at `now` in the IP log (keeping the first
-- seen time), then drops entries last seen more than `keep` ms ago (0: keep
-- every entry).
local function log_ip(now, ip, keep)
  if ip ~= '' then
    local entry = redis.call('HGET', KEYS[2], ip)
    local first = entry and string.match(entry, '^(%d+),') or now
    redis.call('HSET', KEYS[2], ip, first .. ',' .. now)
  end
  if keep > 0 then
    local cutoff = tonumber(now) - keep
    local log = redis.call('HGETALL', KEYS[2])
    for i = 1, #log, 2 do
      local last = tonumber(string.match(log[i + 1], ',(%d+)$') or '0')
      if last < cutoff then redis.call('HDEL', KEYS[2], log[i]) end
    end
  end
end

-- Gives the session and its IP log the configured retention (`retention`
-- ms from now), or, with none (0) and `persist`, removes the idle TTL the
-- session had while it was temporary.
local function apply_retention(retention, persist)
  if retention > 0 then
    redis.call('PEXPIRE', KEYS[1], retention)
    redis.call('PEXPIRE', KEYS[2], retention)
  elseif persist then
    redis.call('PERSIST', KEYS[1])
  end
end
