-- create: a new session with its first data (SPEC §3.2).
-- KEYS: session hash, IP log, and with a new-session limit on a standalone
-- server the limit's set for the client network.
-- ARGV: now (ms), client IP ('' for none), idle TTL (ms), retention of a
-- permanent session (ms, 0: none), IP-log retention (ms, 0: keep), promote
-- ('1'/'0'), limit: max, window (ms), member; then field/value pairs.
-- Returns {1, 0} created, {0, 0} the id is taken, {2, ms} over the limit.
local now, ip = ARGV[1], ARGV[2]
local created = redis.call('HGET', KEYS[1], 'm:created')
if created then
  -- The same call run again after its reply was lost: it did create.
  if created == now then return {1, 0} end
  return {0, 0}
end
if #KEYS > 2 then
  local wait = admit(KEYS[3], ARGV[9], tonumber(ARGV[7]), ARGV[8])
  if wait then return {2, wait} end
end
local keys, bytes = 0, 0
for i = 10, #ARGV, 2 do
  keys = keys + 1
  bytes = bytes + entry_size(ARGV[i], #ARGV[i + 1])
end
local state = 't'
if ARGV[6] == '1' then state = 'p' end
redis.call('HSET', KEYS[1], 'm:state', state, 'm:created', now, 'm:seen', now,
  'm:keys', keys, 'm:bytes', bytes)
if ip ~= '' then redis.call('HSET', KEYS[1], 'm:ip', ip) end
if #ARGV >= 10 then call_with_args('HSET', KEYS[1], 10, #ARGV) end
if state == 't' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  log_ip(now, ip, tonumber(ARGV[5]))
  apply_retention(tonumber(ARGV[4]), false)
end
return {1, 0}
