-- Takes or keeps the capture lease.
-- KEYS[1] lease (string `<fence>:<token>`, PX), KEYS[2] position (JSON: pos, fence, at, lag)
-- ARGV[1] token of the caller, ARGV[2] lease ms
-- returns the caller's fencing number (renewed if it held the lease), or 0 if another holds it
local cur = redis.call('GET', KEYS[1])
if cur then
  local fence, token = string.match(cur, '^(%d+):(.*)$')
  if token == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(fence)
  end
  return 0
end
local state = {}
local raw = redis.call('GET', KEYS[2])
if raw then
  local ok, decoded = pcall(cjson.decode, raw)
  if ok and type(decoded) == 'table' then state = decoded end
end
local fence = (tonumber(state.fence) or 0) + 1
state.fence = fence
redis.call('SET', KEYS[2], cjson.encode(state))
redis.call('SET', KEYS[1], fence .. ':' .. ARGV[1], 'PX', ARGV[2])
return fence
