-- Release a lock only if we still own it (compare-and-delete, REQUIREMENTS D1); also a migration's
-- retraction of an entry it wrote, if nothing replaced it since.
-- KEYS[1]  the lock key (the entry)
-- ARGV[1]  the owner's token (the value written)
-- returns  1 if released, 0 if the lock had expired or belongs to someone else
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
