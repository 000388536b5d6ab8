-- touch, every case but the commonest (touch.lua): a permanent session, or
-- one bound to a continuity token.
return touch_session(session_keys(1), access_args(), fields, meta, stored_ip, bound)
