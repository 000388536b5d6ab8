-- create: a new session with its first data (SPEC §3.2).
-- KEYS: session hash, IP log; on a standalone server with a client IP also
-- the client network's counters (when counted), and with a new-session
-- limit its set.
-- ARGV: now (ms), client IP ('' for none), idle TTL (ms), retention of a
-- permanent session (ms, 0: none), IP-log retention (ms, 0: keep), promote
-- ('1'/'0'), limit: max (0: none here), window (ms), member; retention of
-- the network's counters (ms, 0: not counted by this call), the hash of the
-- continuity token to bind ('' for none); then field/value pairs.
-- Returns {1, 0} created, {0, 0} the id is taken, {2, ms} over the limit.
local now, ip = ARGV[1], ARGV[2]
local existing = redis.call('HGET', KEYS[1], 'm')
if existing then
  -- The same call run again after its reply was lost: it did create.
  if string.match(existing, '^%a,(%d+),') == now then return {1, 0} end
  return {0, 0}
end
local counters, limit_key = nil, KEYS[3]
if tonumber(ARGV[10]) > 0 then counters, limit_key = KEYS[3], KEYS[4] end
if tonumber(ARGV[7]) > 0 then
  local wait = admit(limit_key, ARGV[9], tonumber(ARGV[7]), ARGV[8])
  if wait then return {2, wait} end
end
local first = 12
local keys, bytes = 0, 0
for i = first, #ARGV, 2 do
  keys = keys + 1
  bytes = bytes + entry_size(ARGV[i], #ARGV[i + 1])
end
local state = 't'
if ARGV[6] == '1' then state = 'p' end
local m = meta(state, now, keys, bytes)
if ARGV[11] ~= '' then redis.call('HSET', KEYS[1], 't', ARGV[11]) end
if #ARGV - first < 998 then
  -- The usual case: metadata and data in one command.
  redis.call('HSET', KEYS[1], 'm', m, 'i', ip, unpack(ARGV, first, #ARGV))
else
  redis.call('HSET', KEYS[1], 'm', m, 'i', ip)
  call_with_args('HSET', KEYS[1], first, #ARGV)
end
if state == 't' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('HSET', KEYS[1], 's', now)
  log_ip(now, ip, tonumber(ARGV[5]))
  apply_retention(tonumber(ARGV[4]), false)
end
if counters then
  local conversations = 0
  if state == 'p' then conversations = 1 end
  count_network(counters, now, 1, conversations, ARGV[10])
end
return {1, 0}
