-- Data accounting. A handler key is the field 'd:<key>'; the data size of a
-- session is the sum over its keys of key bytes (without 'd:') plus value
-- bytes: the rule of `store::limits` in Rust, kept in step by the test
-- `data_limits_agree_on_every_store`. The hash keeps the totals in 'm:keys'
-- and 'm:bytes', so a commit costs O(changed keys), not O(session).
local function entry_size(field, value_len)
  return #field - 2 + value_len
end

-- The kept totals; counted once from the data for a hash stored without them.
local function data_size(kept_keys, kept_bytes)
  if kept_keys and kept_bytes then
    return tonumber(kept_keys), tonumber(kept_bytes)
  end
  local keys, bytes = 0, 0
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 2) == 'd:' then
      keys = keys + 1
      bytes = bytes + entry_size(all[i], #all[i + 1])
    end
  end
  return keys, bytes
end

-- Whether a commit taking the data from (keys0, bytes0) to (keys, bytes)
-- keeps within the limits: a limit refuses only a commit that grows what it
-- limits, so a session over a lowered limit can still shed data.
local function within_limits(keys0, bytes0, keys, bytes, max_keys, max_bytes)
  return (keys <= max_keys or keys <= keys0) and (bytes <= max_bytes or bytes <= bytes0)
end
