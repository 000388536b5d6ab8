-- commit: write a request's changed keys, and promotion, to a live session
-- (SPEC §3.4), all or nothing.
-- KEYS: session hash, IP log; on a standalone server, when promoting from
-- a client IP, also the client network's counters.
-- ARGV: now (ms), client IP ('' for none), retention of a permanent session
-- (ms, 0: none), IP-log retention (ms, 0: keep), promote ('1'/'0'), max
-- keys, max bytes, number of keys set, retention of the network's counters
-- (ms, 0: not counted by this call); then that many field/value pairs, then
-- the fields removed.
-- Returns 1 applied, {3, token} applied and made permanent by this call (a
-- conversation started), {4, token} applied with a promotion asked of a
-- session already permanent (a repeat, or this call run again after its
-- reply was lost), where `token` is the hash of the continuity token the
-- session is bound to, or ''; 0 the session is gone (nothing written: no
-- resurrection), 2 over the data limits (nothing written).
local current = redis.call('HGET', KEYS[1], 'm')
if not current then return 0 end
local state, created, keys0, bytes0 = string.match(current, '^(%a),(%d+),(%d+),(%d+)$')
keys0, bytes0 = tonumber(keys0), tonumber(bytes0)
local keys, bytes = keys0, bytes0
local first_set = 10
local first_removal = first_set + 2 * tonumber(ARGV[8])
local function forget(field)
  local old = redis.call('HSTRLEN', KEYS[1], field)
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
if not within_limits(keys0, bytes0, keys, bytes, tonumber(ARGV[6]), tonumber(ARGV[7])) then
  return 2
end
if #ARGV >= first_removal then call_with_args('HDEL', KEYS[1], first_removal, #ARGV) end
local promote = ARGV[5] == '1' and state == 't'
if promote then state = 'p' end
local m = meta(state, created, keys, bytes)
local seen = promote and ARGV[1] or nil
if first_removal - first_set < 998 then
  -- The usual case: data and metadata in one command.
  if seen then
    redis.call('HSET', KEYS[1], 'm', m, 's', seen, unpack(ARGV, first_set, first_removal - 1))
  else
    redis.call('HSET', KEYS[1], 'm', m, unpack(ARGV, first_set, first_removal - 1))
  end
else
  call_with_args('HSET', KEYS[1], first_set, first_removal - 1)
  if seen then
    redis.call('HSET', KEYS[1], 'm', m, 's', seen)
  else
    redis.call('HSET', KEYS[1], 'm', m)
  end
end
if promote then
  log_ip(ARGV[1], ARGV[2], tonumber(ARGV[4]))
  apply_retention(tonumber(ARGV[3]), true)
  if tonumber(ARGV[9]) > 0 then count_network(KEYS[3], ARGV[1], 0, 1, ARGV[9]) end
  return {3, redis.call('HGET', KEYS[1], 't') or ''}
end
if ARGV[5] == '1' then return {4, redis.call('HGET', KEYS[1], 't') or ''} end
return 1
