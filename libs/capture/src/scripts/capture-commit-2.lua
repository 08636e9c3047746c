-- Renews the lease and, in the same step, records the position: only while the caller holds it.
-- KEYS[1] lease, KEYS[2] position
-- ARGV[1] `<fence>:<token>` of the caller, ARGV[2] lease ms, ARGV[3] position JSON ('' to only renew)
-- returns 1 if the caller holds the lease (renewed, position written), 0 if not (nothing written)
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3]) end
return 1
