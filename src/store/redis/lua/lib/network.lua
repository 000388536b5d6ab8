-- The aggregate counters of one client network (SPEC §3.6): a hash with
-- `c` sessions created, `v` conversations started, `f` first and `l` last
-- seen (ms). It expires `retention` ms after the latest event it counts.
local function count_network(key, now, created, conversations, retention)
  if created > 0 then redis.call('HINCRBY', key, 'c', created) end
  if conversations > 0 then redis.call('HINCRBY', key, 'v', conversations) end
  redis.call('HSETNX', key, 'f', now)
  redis.call('HSET', key, 'l', now)
  redis.call('PEXPIRE', key, retention)
end
