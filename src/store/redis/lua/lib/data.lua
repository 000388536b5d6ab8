-- Session metadata and data accounting. The hash of a session holds:
--   'm'         '<state>,<created ms>,<keys>,<bytes>' (state 't' temporary,
--               'p' permanent; keys and bytes: the size of the data)
--   'i'         the client IP of the latest access ('' when unknown),
--               written when it changes
--   't'         the hash of the continuity token it is bound to, if any
--   's'         permanent sessions: the time of the latest access (ms); a
--               temporary session's is its expiry time minus the idle TTL
--   'd:<key>'   each handler key, holding JSON
-- The data size is the sum over the keys of key bytes (without 'd:') plus
-- value bytes: the rule of `store::limits` in Rust, kept in step by the test
-- `data_limits_agree_on_every_store`. Keeping the totals in 'm' makes a
-- commit cost O(changed keys), not O(session).
local function entry_size(field, value_len)
  return #field - 2 + value_len
end

local function meta(state, created, keys, bytes)
  return state .. ',' .. created .. ',' .. keys .. ',' .. bytes
end

-- The fields of metadata `m` (see above); the one reader of its format.
-- Numbers are read with `+ 0`, which parses a string once, where Lua 5.1's
-- `tonumber` parses it twice (about 900 instructions in redis-server).
local function parse_meta(m)
  local state, created, keys, bytes = string.match(m, '^(%a),(%d+),(%d+),(%d+)$')
  return { state = state, created = created, keys = keys + 0, bytes = bytes + 0 }
end

-- Whether a commit taking the data from (keys0, bytes0) to (keys, bytes)
-- keeps within the limits: a limit refuses only a commit that grows what it
-- limits, so a session over a lowered limit can still shed data. The limits
-- come as the script's arguments (strings), read only for what grows.
local function within_limits(keys0, bytes0, keys, bytes, max_keys, max_bytes)
  return (keys <= keys0 or keys <= max_keys + 0) and (bytes <= bytes0 or bytes <= max_bytes + 0)
end
