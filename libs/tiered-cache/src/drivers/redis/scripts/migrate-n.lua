-- Writes a step of migrated entries (a namespace's version N entries converted to N+1), each only
-- if its old entry still holds the value the step read and its new entry is absent, and none if a
-- pattern or tag invalidation of the namespace began since the step read the walk counter (the
-- warm's fence, DESIGN invariant 2). Single node / Sentinel only (the keys span slots).
-- KEYS[1]            the namespace's invalidation (walk) counter
-- KEYS[2i], KEYS[2i+1] for pair i >= 1: the old entry, the new entry
-- ARGV[1]            the counter as read before the old entries
-- ARGV[3i-1], ARGV[3i], ARGV[3i+1] for pair i: the old value as read (wire), the new value (wire),
--                    the TTL to give it, ms, if the old entry has none
-- The new entry gets the old entry's remaining TTL (PTTL, read here: exact at the write).
-- returns            -1 if the counter moved (nothing written), else one code per pair:
--                    the TTL given (> 0) written, 0 the old entry changed (an invalidation, a
--                    write), -1 the new one exists (SET NX: a vN+1 pod's entry or tombstone)
local call = redis.call
if (call('GET', KEYS[1]) or '0') ~= ARGV[1] then return -1 end
local out = {}
for i = 1, (#KEYS - 1) / 2 do
  local old = KEYS[2 * i]
  local a = 3 * i - 1
  if call('GET', old) ~= ARGV[a] then
    out[i] = 0
  else
    local ttl = call('PTTL', old)
    if ttl < 1 then ttl = tonumber(ARGV[a + 2]) end
    if call('SET', KEYS[2 * i + 1], ARGV[a + 1], 'NX', 'PX', ttl) then
      out[i] = ttl
    else
      out[i] = -1
    end
  end
end
return out
