-- create: a new session with its first data (SPEC §3.2), bound to the
-- access's continuity token, if any.
--
-- The bulk of a site's traffic is new visitors, so this script takes only
-- what the creation at hand needs: Rust builds the session's fields (its
-- metadata, IP, token, data) and names the optional parts in ARGV[1].
-- KEYS: the session's hash; then, in this order, only those ARGV[1] names:
--   'n' the client network's counters (standalone server, counted);
--   'l' the network's new-session limit set;
--   'p' the session's IP log (ips, ipz): the creation starts a conversation.
-- ARGV: flags ('nlp', any subset), now (ms), the token hash ('' for none),
-- the idle TTL (ms); then for 'n': the counters' retention (ms); for 'l':
-- the limit's max, window (ms) and member; for 'p': the client IP ('' for
-- none) and what a permanent session needs (`with_permanent`); then the
-- hash's field/value pairs, metadata first.
-- Returns {CREATED, 0}, {EXISTS, 0} the id is taken, {LIMITED, ms}.
local CREATED, EXISTS, LIMITED = 1, 0, 2
local hash = KEYS[1]
local flags, now, token = ARGV[1], ARGV[2], ARGV[3]

local existing = redis.call('HGET', hash, 'm')
if existing then
  -- The same call run again after its reply was lost: it did create. Not
  -- with a token: the id was reserved in the token's binding, and another
  -- browser of the same user may have created it (the caller then commits).
  if token == '' and parse_meta(existing).created == now then return { CREATED, 0 } end
  return { EXISTS, 0 }
end
local key, arg = 2, 5
local counters, counters_retention
if string.find(flags, 'n', 1, true) then
  counters, counters_retention, key, arg = KEYS[key], ARGV[arg], key + 1, arg + 1
end
if string.find(flags, 'l', 1, true) then
  local wait = admit(KEYS[key], ARGV[arg + 2], tonumber(ARGV[arg]), ARGV[arg + 1])
  if wait then return { LIMITED, wait } end
  key, arg = key + 1, arg + 3
end
local promote = string.find(flags, 'p', 1, true)
local log
if promote then
  log = {
    s = { hash = hash, ips = KEYS[key], ipz = KEYS[key + 1] },
    a = with_permanent({ ip = ARGV[arg] }, ARGV[arg + 1]),
  }
  arg = arg + 2
end
if #ARGV - arg < 999 then
  -- The usual case: metadata, IP and data in one command.
  redis.call('HSET', hash, unpack(ARGV, arg, #ARGV))
else
  call_with_args('HSET', hash, arg, #ARGV)
end
if promote then
  log_ip(log.s, log.a)
  apply_retention(log.s, log.a.retention, false)
else
  redis.call('PEXPIRE', hash, ARGV[4])
end
if counters then
  count_network(counters, now, 1, promote and 1 or 0, counters_retention)
end
return { CREATED, 0 }
