-- Writes a batch of warmed entries, each only if it is still what the warm read before loading,
-- and none if a pattern or tag invalidation of the namespace began since (DESIGN invariant 2: the
-- read-through fill's fence, batched; see fill-n.lua). Single node / Sentinel only.
-- KEYS[1]      the namespace's invalidation (walk) counter
-- KEYS[2..]    the entries
-- ARGV[1]      the counter as read before loading
-- ARGV[3i-4], ARGV[3i-3], ARGV[3i-2] for entry KEYS[i] (i >= 2): what it was ('' absent, the
--              tombstone itself, '=' for a live value equal to the new one, or '#' .. sha1 of another
--              live value), the new value (wire format), and its TTL in ms (each entry its own: the
--              TTL spread)
-- returns      entries written, or -1 if the counter moved (nothing written)
local inv = redis.call('GET', KEYS[1])
if (inv or '0') ~= ARGV[1] then return -1 end
local written = 0
for i = 2, #KEYS do
  local was = ARGV[3 * i - 4]
  local new = ARGV[3 * i - 3]
  local cur = redis.call('GET', KEYS[i])
  local same
  if cur == false then
    same = was == ''
  elseif string.sub(cur, 1, 2) == '~t' then
    same = cur == was
  elseif was == '=' then
    -- A refresh of an unchanged value (the daily full warm, mostly): no hashing on either side.
    same = cur == new
  else
    same = string.sub(was, 1, 1) == '#' and redis.sha1hex(cur) == string.sub(was, 2)
  end
  if same then
    redis.call('SET', KEYS[i], new, 'PX', ARGV[3 * i - 2])
    written = written + 1
  end
end
return written
