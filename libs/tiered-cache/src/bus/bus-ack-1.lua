-- A pod acknowledges a fleet-acknowledged invalidation it has applied (docs/design-fleet-ack.md).
-- KEYS[1]  the event's ack set (<prefix>__ack:<token>)
-- ARGV[1]  this pod's id
-- ARGV[2]  the ack set's life, ms
-- ARGV[3]  the publisher's ack channel
-- ARGV[4]  the notification, JSON {t, p}
-- returns  1
-- The set is the record (the waiter reads it at its deadline, in case a notification was lost);
-- the publish wakes the waiter at once. One round trip per pod.
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
