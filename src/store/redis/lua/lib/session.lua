-- What every session script shares: the session's keys, the access it
-- records, the continuity-token rule, and the touch itself.
--
-- A session's keys (KEYS[first..first + 2]), one hash tag:
--   hash  the session: 'm' metadata, 'i' IP, 's' last seen, 't' token, 'd:*' data
--   ips   its IP log: each address's first seen time (ms), and '#dropped'
--   ipz   its IP log: the addresses by last seen time (ms), a sorted set
local function session_keys(first)
  return { hash = KEYS[first], ips = KEYS[first + 1], ipz = KEYS[first + 2] }
end

-- The access (ARGV[1..4], the same in every session script that records
-- one): the client IP ('' for none), the idle TTL (ms), the hash of the
-- request's continuity token ('' for none, '-' for none where a token-bound
-- session needs its token), and what only a permanent session needs, in one
-- argument (`with_permanent` in lib/permanent.lua). A visitor's touch is the
-- commonest call, and each argument costs Redis about as much as parsing
-- one, so the arguments are the fewest it needs.
local ACCESS_ARGS = 4
local function access_args()
  local token = ARGV[3]
  local required = token == '-'
  if required then token = '' end
  return { ip = ARGV[1], idle = ARGV[2], token = token, token_required = required }
end

-- Whether access `a` may open a session bound to token `bound` (false for
-- none), SPEC §3.7: the rule of `Access::may_open` in Rust, both held to
-- the conformance suite.
local function may_open(bound, a)
  if not bound then return true end
  if a.token ~= '' then return bound == a.token end
  return not a.token_required
end

-- Loads session `s` for access `a` and records the access (SPEC §3.1,
-- §3.3). Returns false when the session is gone or not `a`'s to open (then
-- nothing is recorded), else the session's hash as HGETALL gives it (the
-- caller keeps the metadata 'm' and the data fields 'd:*'). `fields`,
-- `meta`, `stored_ip` and `bound`, if given, are what `read_session`
-- already read of it in this call.
--
-- A temporary session records the access as `record_temporary` does; a
-- permanent one its IP, last-seen time, IP log and retention. While Redis
-- is full the access is served unrecorded (`record_tolerating_oom`).
local function record_access(s, a, meta, stored_ip)
  if is_temporary(meta) then
    record_temporary(s.hash, a.idle, a.ip, stored_ip)
  else
    a = with_permanent(a, ARGV[4])
    apply_retention(s, a.retention, false)
    redis.call('HSET', s.hash, 'i', a.ip, 's', a.now)
    log_ip(s, a)
  end
end

local function touch_session(s, a, fields, meta, stored_ip, bound)
  if not fields then fields, meta, stored_ip, bound = read_session(s.hash) end
  if not meta or not may_open(bound, a) then return false end
  return record_tolerating_oom(record_access, s, a, meta, stored_ip) or fields
end
