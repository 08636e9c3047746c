-- Tombstones entries (as invalidate-1.lua), then appends the invalidation's event to the bus stream
-- and publishes it (as bus-publish-1.lua): an invalidation of ids and its announcement in one round
-- trip and one atomic step, so no pod hears of it before L2 holds the tombstones. Not on a Cluster
-- (the stream and the entries are in different slots): there the two scripts go one after the other.
-- Two round trips with the library's work between them were ~0.25 ms of the 8-pod delivery's median
-- (docs/benchmarks.md, "Invalidation seen by 8 pods").
-- KEYS[1]     the bus stream
-- KEYS[2..]   the entries
-- ARGV[1]     the pub/sub channel
-- ARGV[2]     MAXLEN (approximate trimming)
-- ARGV[3]     the event, JSON
-- ARGV[4]     the tombstones' TTL, ms
-- ARGV[5..]   one tombstone per entry, in KEYS order (each unique per invalidation)
-- returns     {live values replaced (not tombstones, not nothing), the new stream id}
local replaced = 0
for i = 2, #KEYS do
  local cur = redis.call('GET', KEYS[i])
  redis.call('SET', KEYS[i], ARGV[i + 3], 'PX', ARGV[4])
  if cur and string.sub(cur, 1, 2) ~= '~t' then replaced = replaced + 1 end
end
-- From here the same lines as bus-publish-1.lua (test/bus-decode.test.ts keeps them so).
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local prev = '0-0'
if last[1] then prev = last[1][1] end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[3])
redis.call('PUBLISH', ARGV[1], '{"id":"' .. id .. '","prev":"' .. prev .. '","event":' .. ARGV[3] .. '}')
return {replaced, id}
