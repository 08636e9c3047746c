-- Append an event to the bus stream and fan it out over pub/sub in one atomic step.
-- KEYS[1]  the stream
-- ARGV[1]  the pub/sub channel
-- ARGV[2]  MAXLEN (approximate trimming)
-- ARGV[3]  the event, JSON
-- returns  the new stream id
-- The message carries the previous stream id so that a subscriber that missed a message sees the
-- gap (its last applied id differs from `prev`) and replays the stream instead of losing it.
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local prev = '0-0'
if last[1] then prev = last[1][1] end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[3])
redis.call('PUBLISH', ARGV[1], '{"id":"' .. id .. '","prev":"' .. prev .. '","event":' .. ARGV[3] .. '}')
return id
