-- Add many entry keys to one tag's index at once (a warm batch), and keep the index alive at least
-- as long as the entries: tag-add-1.lua for a batch, one call per tag instead of one per entry.
-- KEYS[1]  the tag index (a set of entry keys)
-- ARGV[1]  the entries' TTL, ms
-- ARGV[2..] the entry keys
-- returns  how many keys were new in the set
local added = redis.call('SADD', KEYS[1], unpack(ARGV, 2))
local ttl = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return added
