-- Writes a step of migrated entries (a namespace's version N entries converted to N+1), each only
-- if its old entry still holds the value the step read and its new entry is absent, and none if a
-- pattern or tag invalidation of the namespace began since the step read the walk counter (the
-- warm's fence, DESIGN invariant 2). Single node / Sentinel only (the keys span slots).
-- KEYS[1]            the namespace's invalidation (walk) counter
-- KEYS[2i], KEYS[2i+1] for pair i >= 1: the old entry, the new entry
-- ARGV[1]            the counter as read before the old entries
-- ARGV[3i-1], ARGV[3i], ARGV[3i+1] for pair i: the old value as read (wire), the new value (wire),
--                    the TTL to give it, ms (the old entry's remaining PTTL)
-- returns            -1 if the counter moved (nothing written), else one code per pair:
--                    1 written, 0 the old entry changed (an invalidation, a write), 2 the new one exists
local inv = redis.call('GET', KEYS[1])
if (inv or '0') ~= ARGV[1] then return -1 end
local out = {}
local n = (#KEYS - 1) / 2
for i = 1, n do
  local old = KEYS[2 * i]
  local new = KEYS[2 * i + 1]
  local a = 3 * i - 1
  if redis.call('GET', old) ~= ARGV[a] then
    out[i] = 0
  elseif redis.call('EXISTS', new) == 1 then
    out[i] = 2
  else
    redis.call('SET', new, ARGV[a + 1], 'PX', ARGV[a + 2])
    out[i] = 1
  end
end
return out
