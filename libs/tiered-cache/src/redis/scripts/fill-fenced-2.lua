-- A read-through fill fenced by the namespace's walk counter as well (DESIGN invariant 2): written
-- only if the entry is still what the miss saw AND no pattern or tag invalidation of the namespace
-- began since the fill read the counter (its walk may have missed a key that did not exist yet).
-- Not usable on Cluster, where the entry and the counter live in different slots.
-- KEYS[1]  the entry
-- KEYS[2]  the namespace's invalidation counter
-- ARGV[1]  what the miss read: '' for no key, or the tombstone it found
-- ARGV[2]  the value (wire format)
-- ARGV[3]  TTL, ms
-- ARGV[4]  the counter as the fill read it before loading
-- returns  1 if written, 0 if fenced
local inv = redis.call('GET', KEYS[2])
if (inv or '0') ~= ARGV[4] then return 0 end
local cur = redis.call('GET', KEYS[1])
if (cur == false and ARGV[1] == '') or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
