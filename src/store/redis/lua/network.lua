-- network: on Redis Cluster, the per-network work of a create or commit in
-- its own call, since the network's keys live in another slot than the
-- session: the new-session limit (if any), then the aggregate counters.
-- KEYS: the network's counters, and with a limit its limit set.
-- ARGV: now (ms), sessions created, conversations started, retention (ms),
-- and with a limit: max, window (ms), member.
-- Returns 0 counted, else the ms until the limit's window ends (nothing
-- counted).
if #KEYS > 1 then
  local wait = admit(KEYS[2], ARGV[7], tonumber(ARGV[5]), ARGV[6])
  if wait then return wait end
end
if tonumber(ARGV[2]) + tonumber(ARGV[3]) > 0 then
  count_network(KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4])
end
return 0
