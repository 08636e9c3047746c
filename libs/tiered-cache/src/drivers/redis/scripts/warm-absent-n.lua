-- Writes warmed entries that were absent when the warm read them: each only if still absent (SET NX:
-- a fill or an invalidation's tombstone since makes it fail), none if a pattern or tag invalidation
-- of the namespace began since (the walk counter moved). warm-n.lua's fence for its '' entries, with
-- one redis.call and two arguments an entry instead of two calls and three. Single node / Sentinel.
-- KEYS[1]      the namespace's invalidation (walk) counter
-- KEYS[2..]    the entries
-- ARGV[1]      the counter as read before loading
-- ARGV[2i-2], ARGV[2i-1] for entry KEYS[i] (i >= 2): the value (wire format), its TTL in ms
-- returns      entries written, or -1 if the counter moved (nothing written)
local call = redis.call
if (call('GET', KEYS[1]) or '0') ~= ARGV[1] then return -1 end
local written = 0
for i = 2, #KEYS do
  -- GET: a reply of nil (written) costs the script less than the status table of a plain SET.
  if not call('SET', KEYS[i], ARGV[2 * i - 2], 'NX', 'PX', ARGV[2 * i - 1], 'GET') then
    written = written + 1
  end
end
return written
