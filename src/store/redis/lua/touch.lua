-- touch: load a live session and record this access (SPEC §3.1, §3.3).
-- KEYS: the session's keys (hash, ips, ipz).
-- ARGV: the access (lib/session.lua).
-- Returns false, or the session's hash as HGETALL gives it.
--
-- The returning visitor of a temporary session bound to no token (the
-- commonest call of all) is answered here, before the helpers of the other
-- cases are defined (lib/record.lua says why): the token rule lets anyone
-- holding the cookie open a session bound to no token. Every other case
-- goes on to `touch_session` (touch_rest.lua).
local fields, meta, stored_ip, bound = read_session(KEYS[1])
if not meta then return false end
if not bound and is_temporary(meta) then
  return record_tolerating_oom(record_temporary, KEYS[1], ARGV[2], ARGV[1], stored_ip) or fields
end
