-- The walk-counter fence of a warm transaction (single node): MULTI, this script with ARGV[3] '1',
-- one `SET <entry> <value> PX <ttl> NX` per entry absent from the warm's snapshot, this script
-- again with ARGV[3] '0', EXEC. The SET NX is each entry's own fence (absent then, absent now),
-- run natively: no redis.call a key. A transaction cannot skip its commands, so when a pattern or
-- tag invalidation of the namespace began since the snapshot (the counter moved), the first call
-- makes every entry still absent present (a placeholder tombstone), each SET NX then fails, and
-- the second call removes the placeholders: nothing of the transaction stays, as in warm-n.lua.
-- When the counter did not move both calls return at once, without reading any entry. The entries
-- are not declared as KEYS but given as a JSON list (single node / Sentinel only): a KEYS list
-- would cost every call what only the rare moved case needs. KEYS[2] holds that list from the
-- first call to the second (moved case only; created and deleted inside the same transaction).
-- KEYS[1]  the namespace's invalidation (walk) counter
-- KEYS[2]  the list's key (moved case only)
-- ARGV[1]  the counter as read before loading
-- ARGV[2]  the placeholder (a fresh tombstone)
-- ARGV[3]  '1' before the SETs (place), '0' after them (remove)
-- ARGV[4]  with '1': the placeholder's TTL, ms
-- ARGV[5]  with '1': the entries, a JSON array: what their full keys start with, then the rest of
--          each full key (shorter than the full keys)
-- returns  0 if the counter did not move, else -1
local call = redis.call
if (call('GET', KEYS[1]) or '0') == ARGV[1] then return 0 end
local place = ARGV[3] == '1'
local list = place and ARGV[5] or call('GET', KEYS[2])
local entries = cjson.decode(list)
local base = entries[1]
for i = 2, #entries do
  local key = base .. entries[i]
  if place then
    call('SET', key, ARGV[2], 'NX', 'PX', ARGV[4])
  elseif call('GET', key) == ARGV[2] then
    call('DEL', key)
  end
end
if place then call('SET', KEYS[2], list, 'PX', ARGV[4]) else call('DEL', KEYS[2]) end
return -1
