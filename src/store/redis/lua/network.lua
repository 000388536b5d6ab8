-- network: on Redis Cluster, the per-network work of a create or commit in
-- its own call, since the network's keys live in another slot than the
-- session: the new-session limit (if any), then the aggregate counters.
-- KEYS: the network's counters, and with a limit its limit set.
-- ARGV: now (ms), sessions created, conversations started, retention (ms),
-- and with a limit: max, window (ms), member.
-- Returns COUNTED, else the ms until the limit's window ends (nothing
-- counted).
local COUNTED = 0
local counters, limit_key = KEYS[1], KEYS[2]
local now, created, conversations, retention = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local limit_max, limit_window, limit_member = tonumber(ARGV[5]), ARGV[6], ARGV[7]
if limit_key then
  local wait = admit(limit_key, limit_member, limit_max, limit_window)
  if wait then return wait end
end
if created + conversations > 0 then
  count_network(counters, now, created, conversations, retention)
end
return COUNTED
