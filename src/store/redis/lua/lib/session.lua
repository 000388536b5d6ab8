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

-- The access (ARGV[1..8], the same in every session script): now (ms),
-- client IP ('' for none), idle TTL (ms), retention of a permanent session
-- (ms, 0: none), IP-log retention (ms, 0: keep), most addresses an IP log
-- holds, the hash of the request's continuity token ('' for none), and
-- whether a token-bound session needs its token ('1'/'0'). The numbers
-- only a permanent session needs are read by `permanent_access`.
local ACCESS_ARGS = 8
local function access_args()
  return {
    now = ARGV[1], ip = ARGV[2], idle = ARGV[3], token = ARGV[7],
    token_required = ARGV[8] == '1',
  }
end

-- Access `a` with the numbers of a permanent session's retention and IP log.
local function permanent_access(a)
  a.retention, a.ip_keep, a.ip_max = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
  return a
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
-- caller keeps the metadata 'm' and the data fields 'd:*').
--
-- A temporary session records the access in its TTL (slid to now + idle
-- TTL) and its IP only when the IP changed: two commands for a visitor who
-- stays on one address. While Redis is full the access is served
-- unrecorded (see below).
local function record_access(s, a, meta, stored_ip)
  if is_temporary(meta) then
    redis.call('PEXPIRE', s.hash, a.idle)
    if stored_ip ~= a.ip then redis.call('HSET', s.hash, 'i', a.ip) end
  else
    a = permanent_access(a)
    apply_retention(s, a.retention, false)
    redis.call('HSET', s.hash, 'i', a.ip, 's', a.now)
    log_ip(s, a)
  end
end

local function touch_session(s, a)
  local fields = redis.call('HGETALL', s.hash)
  local meta, stored_ip, bound
  for i = 1, #fields, 2 do
    local field = fields[i]
    if field == 'm' then
      meta = fields[i + 1]
    elseif field == 'i' then
      stored_ip = fields[i + 1]
    elseif field == 't' then
      bound = fields[i + 1]
    end
  end
  if not meta or not may_open(bound, a) then return false end
  -- Redis full (`maxmemory` with `noeviction`) refuses the writes that record
  -- the access, not the read: the visitor keeps the session (its TTL slid,
  -- which takes no memory), and the IP and time of this access go unrecorded.
  local recorded, err = pcall(record_access, s, a, meta, stored_ip)
  if not recorded then
    local message = type(err) == 'table' and err.err or tostring(err)
    if string.sub(message, 1, 3) ~= 'OOM' then return redis.error_reply(message) end
  end
  return fields
end
