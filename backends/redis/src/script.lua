-- keycel admission: one atomic round trip per request. Every check runs before any write.
-- KEYS[1]: the key's lease set (a sorted set: member = lease id, score = deadline in ms,
--          hash-tagged `{<key id>}` so a Redis Cluster keeps one key's state on one slot).
-- ARGV: op ("admit" | "renew"), limit, ttl_ms, lease id.
-- Redis's own clock (TIME), so the workers' clock skew does not matter.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
if ARGV[1] == 'renew' then
  -- Only a lease still held (deadline not passed) is renewed; a lost one stays gone.
  local deadline = redis.call('ZSCORE', KEYS[1], ARGV[4])
  if not deadline or tonumber(deadline) <= now then
    redis.call('ZREM', KEYS[1], ARGV[4])
    return 0
  end
  redis.call('ZADD', KEYS[1], 'XX', now + ttl, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ttl * 2)
  return 1
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
if held >= tonumber(ARGV[2]) then
  return {0, held}
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[4])
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return {1, held + 1}
