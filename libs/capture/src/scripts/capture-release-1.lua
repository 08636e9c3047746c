-- Gives the lease up (graceful shutdown), so that a standby takes over at once.
-- KEYS[1] lease
-- ARGV[1] `<fence>:<token>` of the caller
-- returns 1 if it was released, 0 if the caller did not hold it
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
