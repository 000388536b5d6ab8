-- commit: write a request's changed keys, and promotion, to a live session
-- (SPEC §3.4), all or nothing. Like create.lua, it takes only what this
-- commit needs: the optional parts are named in ARGV[1].
-- KEYS: the session's hash; then, in this order, only those ARGV[1] names:
--   'n' the client network's counters (standalone server, counted);
--   'p' the session's IP log (ips, ipz): the commit asks for promotion.
-- ARGV: flags ('np', any subset), max keys, max bytes, the number of keys
-- set; then for 'n': the counters' retention (ms); for 'p': the client IP
-- ('' for none) and what a permanent session needs (`with_permanent`); then
-- that many field/value pairs, then the fields removed.
-- Returns APPLIED, PROMOTED (applied, and made permanent by this call: a
-- conversation started), MISSING (the session is gone: nothing written, no
-- resurrection), OVER_LIMIT (over the data limits: nothing written).
--
-- A commit that promotes nothing (the commonest) is answered here, before
-- the helpers of a promotion are defined (lib/record.lua says why); a
-- promotion goes on in commit_rest.lua.
local MISSING, APPLIED, OVER_LIMIT, PROMOTED = 0, 1, 2, 3
local hash = KEYS[1]
local flags = ARGV[1]
local max_keys, max_bytes = ARGV[2], ARGV[3]
local key, arg = 2, 5
local counters, counters_retention
if string.find(flags, 'n', 1, true) then
  counters, counters_retention, key, arg = KEYS[key], ARGV[arg], key + 1, arg + 1
end
local promote_asked = string.find(flags, 'p', 1, true)
local p_arg = arg
if promote_asked then arg = arg + 2 end
local first_set = arg
local first_removal = first_set + 2 * ARGV[4] -- the number of keys set

local current = redis.call('HGET', hash, 'm')
if not current then return MISSING end
local m0 = parse_meta(current)
local keys, bytes = m0.keys, m0.bytes
local function forget(field)
  local old = redis.call('HSTRLEN', hash, field)
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
if #ARGV >= first_removal then call_with_args('HDEL', hash, first_removal, #ARGV) end
local promote = promote_asked and m0.state == 't'

-- Writes the data set, with the metadata `m` and the last-seen time `now`
-- when this commit changes them.
local function write(m, now)
  if first_removal - first_set < 998 then
    -- The usual case: data and metadata in one command.
    if now then
      redis.call('HSET', hash, 'm', m, 's', now, unpack(ARGV, first_set, first_removal - 1))
    elseif m then
      redis.call('HSET', hash, 'm', m, unpack(ARGV, first_set, first_removal - 1))
    elseif first_removal > first_set then
      redis.call('HSET', hash, unpack(ARGV, first_set, first_removal - 1))
    end
  else
    call_with_args('HSET', hash, first_set, first_removal - 1)
    if now then
      redis.call('HSET', hash, 'm', m, 's', now)
    elseif m then
      redis.call('HSET', hash, 'm', m)
    end
  end
end
if not promote then
  -- The metadata is rewritten only when it changes: a handler that
  -- rewrites a key with a value of the same size (a counter, a flag)
  -- writes that key.
  if keys ~= m0.keys or bytes ~= m0.bytes then
    write(meta(m0.state, m0.created, keys, bytes))
  else
    write()
  end
  return APPLIED
end
