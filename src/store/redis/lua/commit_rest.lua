-- commit, a promotion (commit.lua): the session becomes permanent; its
-- last-seen time, IP log and retention start, and the network counts a
-- conversation.
local a = with_permanent({ ip = ARGV[p_arg] }, ARGV[p_arg + 1])
write(meta('p', m0.created, keys, bytes), a.now)
local s = { hash = hash, ips = KEYS[key], ipz = KEYS[key + 1] }
log_ip(s, a)
apply_retention(s, a.retention, true)
if counters then count_network(counters, a.now, 0, 1, counters_retention) end
return PROMOTED
