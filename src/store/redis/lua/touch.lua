-- touch: load a live session and record this access (SPEC §3.1, §3.3).
-- KEYS: session hash, IP log.
-- ARGV: '<now ms>,<client IP>' (IP empty for none), idle TTL (ms),
-- retention of a permanent session (ms, 0: none), IP-log retention (ms, 0:
-- keep).
-- Returns false when the session is gone, else its fields as they were
-- before this access.
local fields = redis.call('HGETALL', KEYS[1])
local meta
for i = 1, #fields, 2 do
  if fields[i] == 'm' then
    meta = fields[i + 1]
    break
  end
end
if not meta then return false end
redis.call('HSET', KEYS[1], 'a', ARGV[1])
if string.byte(meta, 1) == 116 then -- 't': temporary
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  local now, ip = string.match(ARGV[1], '^(%d+),(.*)$')
  log_ip(now, ip, tonumber(ARGV[4]))
  apply_retention(tonumber(ARGV[3]), false)
end
return fields
