-- The aggregate counters of one client network (SPEC §3.6): a hash with
-- `c` sessions created, `v` conversations started, `f` first and `l` last
-- seen (ms). It expires `retention` ms after the latest event it counts.
-- Three commands for the usual event (a creation on a known network).
local function count_network(key, now, created, conversations, retention)
  if created > 0 then redis.call('HINCRBY', key, 'c', created) end
  if conversations > 0 then redis.call('HINCRBY', key, 'v', conversations) end
  -- HSET answers how many fields it added: 1 only for a new hash's `l`.
  if redis.call('HSET', key, 'l', now) == 1 then redis.call('HSET', key, 'f', now) end
  redis.call('PEXPIRE', key, retention)
end
