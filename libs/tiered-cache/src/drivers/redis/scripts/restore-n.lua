-- A restore batch on a single node: RESTORE of each key with its absolute expiry, in one call
-- instead of one command a key. Without REPLACE an existing key is kept (not counted). Keys of one
-- node (a Cluster restores per key: they span slots).
-- KEYS               the keys, full
-- ARGV[1]            '1': replace existing keys; else keep them
-- ARGV[2i], ARGV[2i+1] for key i: its absolute expiry (ms since the epoch; 0 none), its DUMP payload
-- returns            how many keys were restored
local call = redis.call
local replace = ARGV[1] == '1'
local n = 0
for i = 1, #KEYS do
  local k = KEYS[i]
  if replace then
    call('RESTORE', k, ARGV[2 * i], ARGV[2 * i + 1], 'REPLACE', 'ABSTTL')
    n = n + 1
  elseif call('EXISTS', k) == 0 then
    call('RESTORE', k, ARGV[2 * i], ARGV[2 * i + 1], 'ABSTTL')
    n = n + 1
  end
end
return n
