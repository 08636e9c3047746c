-- Replace an entry by a unique tombstone: a fill that started before sees a different value at its
-- compare-and-set and does not write (DESIGN invariant 2). The tombstone reads as a miss.
-- KEYS[1]  the entry
-- ARGV[1]  the tombstone (unique per invalidation)
-- ARGV[2]  its TTL, ms: longer than any fill may take
-- returns  1 if a value (not a tombstone or nothing) was replaced
local cur = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if cur and string.sub(cur, 1, 2) ~= '~t' then return 1 end
return 0
