-- What a permanent session (one with a conversation) keeps besides its
-- hash: its IP log (SPEC §3.3), in two keys (see session.lua): `ips`, each
-- address's first seen time, and `ipz`, the addresses by last seen time.
-- Recording an access costs O(log n) in the log's size, never a scan.

-- The field of `ips` counting the addresses that gave way (not an address).
local DROPPED = '#dropped'
-- Entries past their retention dropped by one access, at most (the rest
-- by the next accesses: each entry is dropped once).
local EXPIRE_BATCH = 16

-- Access `a` with what only a permanent session needs, read from `packed`:
-- '<now ms>,<retention ms, 0: none>,<IP-log retention ms, 0: keep>,<most
-- addresses an IP log holds>' (`push_permanent` in Rust). One argument
-- rather than four: each argument costs Redis about as much as parsing one,
-- and only a permanent session's calls read it.
local function with_permanent(a, packed)
  local now, retention, ip_keep, ip_max = string.match(packed, '^(%d+),(%d+),(%d+),(%d+)$')
  -- `+ 0` parses once (see parse_meta in data.lua).
  a.now, a.retention, a.ip_keep, a.ip_max = now, retention + 0, ip_keep + 0, ip_max + 0
  return a
end

-- Records access `a` in the IP log of session `s`: at most `a.ip_max`
-- addresses, the least recently seen giving way (counted); then drops
-- entries last seen more than `a.ip_keep` ms ago (0: keep them).
local function log_ip(s, a)
  -- GT: a late access never moves an address's last seen time back.
  if a.ip ~= '' and redis.call('ZADD', s.ipz, 'GT', a.now, a.ip) == 1 then
    if redis.call('HSETNX', s.ips, a.ip, a.now) == 1 then
      local over = redis.call('ZCARD', s.ipz) - a.ip_max
      if over > 0 then
        local gone = redis.call('ZPOPMIN', s.ipz, over)
        for i = 1, #gone, 2 do redis.call('HDEL', s.ips, gone[i]) end
        redis.call('HINCRBY', s.ips, DROPPED, over)
      end
    end
  end
  if a.ip_keep > 0 then
    local cutoff = '(' .. (tonumber(a.now) - a.ip_keep)
    local old = redis.call('ZRANGEBYSCORE', s.ipz, '-inf', cutoff, 'LIMIT', 0, EXPIRE_BATCH)
    if #old > 0 then
      redis.call('ZREM', s.ipz, unpack(old))
      redis.call('HDEL', s.ips, unpack(old))
    end
  end
end

-- Gives session `s` and its IP log the configured retention (`retention`
-- ms from now), or, with none (0) and `persist`, removes the idle TTL the
-- session had while it was temporary.
local function apply_retention(s, retention, persist)
  if retention > 0 then
    redis.call('PEXPIRE', s.hash, retention)
    redis.call('PEXPIRE', s.ips, retention)
    redis.call('PEXPIRE', s.ipz, retention)
  elseif persist then
    redis.call('PERSIST', s.hash)
  end
end
