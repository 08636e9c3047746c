-- Write a read-through fill only if the entry is still what the miss saw (DESIGN invariant 2).
-- KEYS[1]  the entry
-- ARGV[1]  what the miss read: '' for no key, or the tombstone it found
-- ARGV[2]  the value (wire format)
-- ARGV[3]  TTL, ms
-- returns  1 if written, 0 if an invalidation (a new tombstone) or a write got there first
local cur = redis.call('GET', KEYS[1])
if (cur == false and ARGV[1] == '') or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
