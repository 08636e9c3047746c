-- Write a read-through fill only if the entry is still what the miss saw and, given the
-- namespace's walk counter, only if no pattern or tag invalidation of the namespace began since
-- the fill read it: its walk may have missed a key that did not exist yet (DESIGN invariant 2).
-- With one key the counter is not checked here: on a Cluster the entry and the counter live in
-- different slots, so the caller reads the counter again after writing and retracts the entry.
-- KEYS[1]  the entry
-- KEYS[2]  optional: the namespace's invalidation (walk) counter
-- ARGV[1]  what the miss read: '' for no key, or the tombstone it found
-- ARGV[2]  the value (wire format)
-- ARGV[3]  TTL, ms
-- ARGV[4]  with KEYS[2]: the counter as the fill read it before loading
-- returns  1 if written, 0 if an invalidation (a new tombstone, a walk) or a write got there first
if KEYS[2] then
  local inv = redis.call('GET', KEYS[2])
  if (inv or '0') ~= ARGV[4] then return 0 end
end
local cur = redis.call('GET', KEYS[1])
if (cur == false and ARGV[1] == '') or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
