-- commit: write a request's changed keys, and promotion, to a live session
-- (SPEC §3.4), all or nothing.
-- KEYS: the session's keys (hash, ips, ipz); on a standalone server, when
-- promoting from a client IP, also the client network's counters.
-- ARGV: the access (lib/session.lua); then promote ('1'/'0'), max keys,
-- max bytes, the number of keys set, the retention of the network's
-- counters (ms, 0: not counted by this call); then that many field/value
-- pairs, then the fields removed.
-- Returns APPLIED, PROMOTED (applied, and made permanent by this call: a
-- conversation started), MISSING (the session is gone: nothing written, no
-- resurrection), OVER_LIMIT (over the data limits: nothing written).
local MISSING, APPLIED, OVER_LIMIT, PROMOTED = 0, 1, 2, 3
local s = session_keys(1)
local a = access_args()
local promote_asked = ARGV[ACCESS_ARGS + 1] == '1'
local max_keys, max_bytes = tonumber(ARGV[ACCESS_ARGS + 2]), tonumber(ARGV[ACCESS_ARGS + 3])
local sets = tonumber(ARGV[ACCESS_ARGS + 4])
local network_retention = ARGV[ACCESS_ARGS + 5]
local first_set = ACCESS_ARGS + 6
local first_removal = first_set + 2 * sets

local current = redis.call('HGET', s.hash, 'm')
if not current then return MISSING end
local m0 = parse_meta(current)
local keys, bytes = m0.keys, m0.bytes
local function forget(field)
  local old = redis.call('HSTRLEN', s.hash, field)
  if old > 0 then
    keys = keys - 1
    bytes = bytes - entry_size(field, old)
  end
end
for i = first_set, first_removal - 1, 2 do
  forget(ARGV[i])
  keys = keys + 1
  bytes = bytes + entry_size(ARGV[i], #ARGV[i + 1])
end
for i = first_removal, #ARGV do forget(ARGV[i]) end
if not within_limits(m0.keys, m0.bytes, keys, bytes, max_keys, max_bytes) then
  return OVER_LIMIT
end
if #ARGV >= first_removal then call_with_args('HDEL', s.hash, first_removal, #ARGV) end
local promote = promote_asked and m0.state == 't'
local m = meta(promote and 'p' or m0.state, m0.created, keys, bytes)
local seen = promote and a.now or nil
if first_removal - first_set < 998 then
  -- The usual case: data and metadata in one command.
  if seen then
    redis.call('HSET', s.hash, 'm', m, 's', seen, unpack(ARGV, first_set, first_removal - 1))
  else
    redis.call('HSET', s.hash, 'm', m, unpack(ARGV, first_set, first_removal - 1))
  end
else
  call_with_args('HSET', s.hash, first_set, first_removal - 1)
  if seen then
    redis.call('HSET', s.hash, 'm', m, 's', seen)
  else
    redis.call('HSET', s.hash, 'm', m)
  end
end
if not promote then return APPLIED end
log_ip(s, a)
apply_retention(s, a.retention, true)
if tonumber(network_retention) > 0 then count_network(KEYS[4], a.now, 0, 1, network_retention) end
return PROMOTED
