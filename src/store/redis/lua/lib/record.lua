-- Reading a session and recording an access to it, the part of every
-- touch that a returning visitor's needs: no other helper, so that touch.lua
-- can answer the common case before the other helpers are defined (each
-- helper a script defines is a closure made, and collected, on every call).

-- Whether metadata `m` is a temporary session's: its first byte, read
-- without parsing (the touch of every returning visitor asks).
local function is_temporary(m)
  return string.byte(m, 1) == 116 -- 't'
end

-- The session `hash` as HGETALL gives it, and among its fields the
-- metadata 'm', the IP 'i' and the token binding 't' (nil when absent).
local function read_session(hash)
  local fields = redis.call('HGETALL', hash)
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
  return fields, meta, stored_ip, bound
end

-- Records an access to the temporary session `hash`: its TTL slid to
-- `idle` ms, its IP written only when it changed (two commands for a
-- visitor who stays on one address).
local function record_temporary(hash, idle, ip, stored_ip)
  redis.call('PEXPIRE', hash, idle)
  if stored_ip ~= ip then redis.call('HSET', hash, 'i', ip) end
end

-- Runs `record(...)`, the writes that record an access, so that Redis
-- being full (`maxmemory` with `noeviction`) never costs the visitor the
-- read. Redis refuses a script's first write when it may take memory, and
-- lets a script that has written finish: a temporary session's access
-- starts by sliding its TTL (no memory), so it is recorded whole; a
-- permanent session's without a retention starts with its IP and time,
-- refused, so that access goes unrecorded. Returns nil, or the error reply of any other failure.
local function record_tolerating_oom(record, ...)
  local recorded, err = pcall(record, ...)
  if recorded then return nil end
  local message = type(err) == 'table' and err.err or tostring(err)
  if string.sub(message, 1, 3) == 'OOM' then return nil end
  return redis.error_reply(message)
end
