-- admit: the new-session limit on its own, where the limit's set lives in
-- another slot than the session (Redis Cluster): one more call, made only
-- when a limit is configured.
-- KEYS: the limit's set for the client network.
-- ARGV: max, window (ms), member.
-- Returns 0 admitted, else the ms until the window ends.
return admit(KEYS[1], ARGV[3], tonumber(ARGV[1]), ARGV[2]) or 0
