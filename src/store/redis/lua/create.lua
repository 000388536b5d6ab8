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
-- session's metadata ('m') and IP ('i'), then the hash's other field/value
-- pairs (token, last seen, data).
-- Returns {CREATED, 0}, {EXISTS, 0} the id is taken, {LIMITED, ms}.
--
-- The commonest creation (a temporary session under no new-session limit)
-- is answered here, before the helpers of the other cases are defined
-- (lib/record.lua says why); every other case goes on in create_rest.lua.
local CREATED, EXISTS, LIMITED = 1, 0, 2
local hash = KEYS[1]
local flags, now, token, idle = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local existing = redis.call('HGET', hash, 'm')
if not existing and (flags == '' or flags == 'n') then
  -- 'n': the network's counters (KEYS[2]) and their retention (ARGV[5]).
  -- Read by comparing the flags, not by create_rest.lua's walk over them:
  -- its three `string.find` calls cost this path 2 900 instructions.
  local counters, counters_retention, meta_at = nil, nil, 5
  if flags == 'n' then counters, counters_retention, meta_at = KEYS[2], ARGV[5], 6 end
  if #ARGV - meta_at < 999 then
    redis.call('HSET', hash, 'm', ARGV[meta_at], 'i', ARGV[meta_at + 1], unpack(ARGV, meta_at + 2, #ARGV))
    redis.call('PEXPIRE', hash, idle)
    if counters then count_network(counters, now, 1, 0, counters_retention) end
    return { CREATED, 0 }
  end
end
