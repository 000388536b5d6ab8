-- touch: load a live session and record this access (SPEC §3.1, §3.3).
-- KEYS: session hash, IP log.
-- ARGV: now (ms), client IP ('' for none), idle TTL (ms), retention of a
-- permanent session (ms, 0: none), IP-log retention (ms, 0: keep).
-- Returns false when the session is gone, else its fields as they were
-- before this access.
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return false end
local state
for i = 1, #fields, 2 do
  if fields[i] == 'm:state' then
    state = fields[i + 1]
    break
  end
end
local now, ip = ARGV[1], ARGV[2]
if ip ~= '' then
  redis.call('HSET', KEYS[1], 'm:seen', now, 'm:ip', ip)
else
  redis.call('HSET', KEYS[1], 'm:seen', now)
  redis.call('HDEL', KEYS[1], 'm:ip')
end
if state == 't' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  log_ip(now, ip, tonumber(ARGV[5]))
  apply_retention(tonumber(ARGV[4]), false)
end
return fields
