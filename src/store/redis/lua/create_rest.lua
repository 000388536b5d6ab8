-- create, every case but the commonest (create.lua): a taken id, a
-- new-session limit, a creation that starts a conversation, or data too
-- large for one command.
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
  redis.call('HSET', hash, 'm', ARGV[arg], 'i', ARGV[arg + 1], unpack(ARGV, arg + 2, #ARGV))
else
  redis.call('HSET', hash, 'm', ARGV[arg], 'i', ARGV[arg + 1])
  call_with_args('HSET', hash, arg + 2, #ARGV)
end
if promote then
  log_ip(log.s, log.a)
  apply_retention(log.s, log.a.retention, false)
else
  redis.call('PEXPIRE', hash, idle)
end
if counters then
  count_network(counters, now, 1, promote and 1 or 0, counters_retention)
end
return { CREATED, 0 }
