-- Writes ARGV[first..last] (field/value pairs, or fields) with one command
-- per 1000 arguments: Lua's unpack() fails on a few thousand values.
local function call_with_args(command, key, first, last)
  for i = first, last, 1000 do
    redis.call(command, key, unpack(ARGV, i, math.min(i + 999, last)))
  end
end
