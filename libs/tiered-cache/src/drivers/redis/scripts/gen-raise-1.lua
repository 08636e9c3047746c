-- Raises a namespace's generation to at least a value (a restore brings back entries of the
-- generation they were backed up at); never lowers it: generations only grow.
-- KEYS[1]  the generations hash
-- ARGV[1]  the namespace
-- ARGV[2]  the generation wanted
-- returns  the namespace's generation after the call
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local want = tonumber(ARGV[2])
if cur < want then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return want
end
return cur
