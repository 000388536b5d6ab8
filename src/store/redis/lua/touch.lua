-- touch: load a live session and record this access (SPEC §3.1, §3.3);
-- see `touch_session` in lib/session.lua.
-- KEYS: the session's keys (hash, ips, ipz).
-- ARGV: the access (lib/session.lua).
-- Returns false, or the session's metadata followed by its data.
return touch_session(session_keys(1), access_args())
