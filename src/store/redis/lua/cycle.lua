-- cycle: give a live session a new id (SPEC §3.5 `cycle_id`, §3.7 adoption
-- by a continuity token): its hash and IP log are renamed, keeping data,
-- state, TTL and token binding; a session bound to no token is bound to the
-- access's; then the access is recorded as by touch. The old id names
-- nothing afterwards, so a commit still running on it finds no session.
-- KEYS: the old id's keys (hash, ips, ipz), then the new id's (one slot:
-- on Redis Cluster the new id is chosen in the old one's slot).
-- ARGV: the access (lib/session.lua).
-- Returns false when the old session is gone or not the access's to open,
-- or the new id is taken (nothing changed); else what touch returns.
local old, new = session_keys(1), session_keys(4)
local a = access_args()
if redis.call('EXISTS', old.hash) == 0 then
  -- Run again after it succeeded (its reply lost): the session is `new`.
  return touch_session(new, a)
end
if not may_open(redis.call('HGET', old.hash, 't'), a) then return false end
if redis.call('EXISTS', new.hash) == 1 then return false end
redis.call('RENAME', old.hash, new.hash)
if redis.call('EXISTS', old.ips) == 1 then redis.call('RENAME', old.ips, new.ips) end
if redis.call('EXISTS', old.ipz) == 1 then redis.call('RENAME', old.ipz, new.ipz) end
if a.token ~= '' then redis.call('HSETNX', new.hash, 't', a.token) end
return touch_session(new, a)
