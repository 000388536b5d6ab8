-- touch: load a live session and record this access (SPEC §3.1, §3.3).
-- KEYS: session hash, IP log.
-- ARGV: now (ms), client IP ('' for none), idle TTL (ms), retention of a
-- permanent session (ms, 0: none), IP-log retention (ms, 0: keep); with a
-- continuity token (SPEC §3.7) also its hash and 'v' (the session must be
-- bound to it) or 'c' (claim: bind it if the session is bound to none).
-- Returns false when the session is gone (or not the token's to use), else
-- its metadata ('m') followed by its data fields and values, and, for a
-- session bound to a continuity token touched without it, 't' and the
-- token's hash last (its binding is then kept alive by another call).
--
-- A temporary session records the access in its TTL (slid to now + idle
-- TTL) and its IP only when the IP changed: two commands for a visitor
-- who stays on one address. While Redis is full the access is served
-- unrecorded (see below).
local fields = redis.call('HGETALL', KEYS[1])
local answer = {false}
local stored_ip, token
for i = 1, #fields, 2 do
  local field = fields[i]
  if field == 'm' then
    answer[1] = fields[i + 1]
  elseif field == 'i' then
    stored_ip = fields[i + 1]
  elseif field == 't' then
    token = fields[i + 1]
  elseif string.byte(field, 1) == 100 then -- 'd': a handler key
    answer[#answer + 1] = field
    answer[#answer + 1] = fields[i + 1]
  end
end
local meta = answer[1]
if not meta then return false end
if ARGV[6] and token ~= ARGV[6] then
  if token or ARGV[7] ~= 'c' then return false end
  redis.call('HSET', KEYS[1], 't', ARGV[6])
elseif token and not ARGV[6] then
  answer[#answer + 1] = 't'
  answer[#answer + 1] = token
end
local now, ip = ARGV[1], ARGV[2]
local function record()
  if string.byte(meta, 1) == 116 then -- 't': temporary
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    if stored_ip ~= ip then redis.call('HSET', KEYS[1], 'i', ip) end
  else
    apply_retention(tonumber(ARGV[4]), false)
    redis.call('HSET', KEYS[1], 'i', ip, 's', now)
    log_ip(now, ip, tonumber(ARGV[5]))
  end
end
-- Redis full (`maxmemory` with `noeviction`) refuses the writes that record
-- the access, not the read: the visitor keeps the session (its TTL slid,
-- which takes no memory), and the IP and time of this access go unrecorded.
local recorded, err = pcall(record)
if not recorded then
  local message = type(err) == 'table' and err.err or tostring(err)
  if string.sub(message, 1, 3) ~= 'OOM' then return redis.error_reply(message) end
end
return answer
