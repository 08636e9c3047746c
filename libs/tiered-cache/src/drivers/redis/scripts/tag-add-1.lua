-- Add an entry key to a tag's index and keep the index alive at least as long as the entry.
-- KEYS[1]  the tag index (a set of entry keys)
-- ARGV[1]  the entry key
-- ARGV[2]  the entry's TTL, ms
-- returns  1 if the key was new in the set, else 0
local added = redis.call('SADD', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return added
