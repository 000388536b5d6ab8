-- create: a new session with its first data (SPEC §3.2), bound to the
-- access's continuity token, if any.
-- KEYS: the session's keys (hash, ips, ipz); on a standalone server with a
-- client IP also the client network's counters (when counted), and with a
-- new-session limit its set.
-- ARGV: the access (lib/session.lua); then promote ('1'/'0'), the limit's
-- max (0: none here), window (ms) and member, the retention of the
-- network's counters (ms, 0: not counted by this call); then field/value
-- pairs.
-- Returns {CREATED, 0}, {EXISTS, 0} the id is taken, {LIMITED, ms}.
local CREATED, EXISTS, LIMITED = 1, 0, 2
local s = session_keys(1)
local a = access_args()
local promote = ARGV[ACCESS_ARGS + 1] == '1'
local limit_max = tonumber(ARGV[ACCESS_ARGS + 2])
local limit_window, limit_member = ARGV[ACCESS_ARGS + 3], ARGV[ACCESS_ARGS + 4]
local network_retention = ARGV[ACCESS_ARGS + 5]
local first_pair = ACCESS_ARGS + 6

local existing = redis.call('HGET', s.hash, 'm')
if existing then
  -- The same call run again after its reply was lost: it did create. Not
  -- with a token: the id was reserved in the token's binding, and another
  -- browser of the same user may have created it (the caller then commits).
  if a.token == '' and parse_meta(existing).created == a.now then return { CREATED, 0 } end
  return { EXISTS, 0 }
end
local counters, limit_key = nil, KEYS[4]
if tonumber(network_retention) > 0 then counters, limit_key = KEYS[4], KEYS[5] end
if limit_max > 0 then
  local wait = admit(limit_key, limit_member, limit_max, limit_window)
  if wait then return { LIMITED, wait } end
end
local keys, bytes = 0, 0
for i = first_pair, #ARGV, 2 do
  keys = keys + 1
  bytes = bytes + entry_size(ARGV[i], #ARGV[i + 1])
end
local state = promote and 'p' or 't'
local m = meta(state, a.now, keys, bytes)
if a.token ~= '' then redis.call('HSET', s.hash, 't', a.token) end
if #ARGV - first_pair < 998 then
  -- The usual case: metadata and data in one command.
  redis.call('HSET', s.hash, 'm', m, 'i', a.ip, unpack(ARGV, first_pair, #ARGV))
else
  redis.call('HSET', s.hash, 'm', m, 'i', a.ip)
  call_with_args('HSET', s.hash, first_pair, #ARGV)
end
if state == 't' then
  redis.call('PEXPIRE', s.hash, a.idle)
else
  redis.call('HSET', s.hash, 's', a.now)
  log_ip(s, a)
  apply_retention(s, a.retention, false)
end
if counters then
  count_network(counters, a.now, 1, promote and 1 or 0, network_retention)
end
return { CREATED, 0 }
