-- A backup step's read on a single node: DUMP and PTTL of each key, in one call instead of two
-- commands a key. Read-only; keys of one node (a Cluster reads per key: they span slots).
-- KEYS               the keys, full
-- returns            for key i: [2i-1] its DUMP payload (nil: gone), [2i] its PTTL (ms; -1 none,
--                    -2 gone)
local call = redis.call
local out = {}
for i = 1, #KEYS do
  local k = KEYS[i]
  out[2 * i - 1] = call('DUMP', k)
  out[2 * i] = call('PTTL', k)
end
return out
