-- network_stats: the aggregate counters of one client network (SPEC §3.6).
-- KEYS: the network's counters.
-- Returns the hash's fields and values (empty when none are kept).
local counters = KEYS[1]
return redis.call('HGETALL', counters)
