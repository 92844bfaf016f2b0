-- keycel admission: one atomic round trip per request. Every check (concurrency, then rate,
-- then credits) runs before any write, so a refusal writes nothing.
-- Redis's own clock (TIME), so the workers' clock skew does not matter.
--
-- KEYS (all hash-tagged `{keycel:<key id>}` so a Redis Cluster keeps one key's state on one slot):
--   1 `{keycel:<id>}:leases`   sorted set: member = lease id, score = deadline (ms)
--   2 `{keycel:<id>}:rate`     string: the GCRA theoretical arrival time (ms)
--   3 `{keycel:<id>}:credits`  hash: epoch (grant's set_at, ms), first (credits of period 0),
--                              amount + interval (refill; 0 = none), period, used
-- ARGV[1] op:
--   "renew":  2 ttl_ms, 3 lease id                       -> 1 | 0 (lost)
--   "usage":  2..7 grant (see below)                     -> {remaining, used, period}
--   "admit":  2 limit, 3 ttl_ms, 4 lease id, 5 cost, 6 rate interval_ms (0: no rate limit),
--             7 rate tolerance_ms, 8..13 grant (8 "-" : unmetered); 5..13 absent (and KEYS
--             2 and 3 with them): no rate limit, unmetered (the short form most admits take)
--      -> held (the count alone: the short form, admitted)
--       | {1, held, rate_remaining (-1: none), rate_reset_ms, credits_remaining (-1: none), used, period, epoch}
--       | {0, "busy", held} | {0, "rate", retry_after_ms, reset_ms}
--       | {0, "credits", retry_after_ms (-1: no refill), used, period, epoch}
-- grant: first, amount, interval_ms, epoch_ms, floor_period, floor_used. The floor is the
-- highest `used` the calling process has seen for (epoch, floor_period): when the state is
-- gone (FLUSHALL, restart without persistence) the count re-starts from it, not from zero.

-- The short admit (no rate limit, unmetered: most requests) with room: the four calls every
-- admit needs and nothing else, answered with the count alone. A full set goes on to the
-- general path below, which reclaims lost leases before it refuses.
if ARGV[5] == nil and ARGV[1] == 'admit' then
  local held = redis.call('ZCARD', KEYS[1])
  if held < tonumber(ARGV[2]) then
    local t = redis.call('TIME')
    redis.call('ZADD', KEYS[1], t[1] * 1000 + math.floor(t[2] / 1000) + ARGV[3], ARGV[4])
    redis.call('PEXPIRE', KEYS[1], ARGV[3] * 2)
    return held + 1
  end
end

-- Integers as exact decimal strings (Lua's default number form loses digits past 14).
local function int(x) return string.format('%d', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- The credits count in force: {budget, used, period, epoch, next_refill_ms (-1: none), grant}.
local function credits(a)
  local g = {first = tonumber(ARGV[a]), amount = tonumber(ARGV[a + 1]), interval = tonumber(ARGV[a + 2]),
             epoch = tonumber(ARGV[a + 3])}
  local s = redis.call('HMGET', KEYS[3], 'epoch', 'first', 'amount', 'interval', 'period', 'used')
  local s_epoch = tonumber(s[1])
  -- The newest grant wins: a process still holding an older record counts against the
  -- newer grant stored here (never resets the count by flipping grants back and forth).
  if s_epoch and s_epoch > g.epoch then
    g = {first = tonumber(s[2]), amount = tonumber(s[3]), interval = tonumber(s[4]), epoch = s_epoch}
  end
  local period = 0
  if g.interval > 0 and now >= g.epoch then
    period = math.floor((now - g.epoch) / g.interval)
  end
  local used = 0
  -- The period never goes back (core's `CreditGrant::current`): a count stored for a later
  -- period stays in force.
  if s_epoch == g.epoch and tonumber(s[5]) >= period then
    period = tonumber(s[5])
    used = tonumber(s[6])
  end
  if g.epoch == tonumber(ARGV[a + 3]) and tonumber(ARGV[a + 4]) == period then
    used = math.max(used, tonumber(ARGV[a + 5]))
  end
  local budget = g.first
  if period > 0 then budget = g.amount end
  local next_refill = -1
  if g.interval > 0 then
    if now < g.epoch then next_refill = g.epoch + g.interval else next_refill = g.epoch + (period + 1) * g.interval end
  end
  return budget, used, period, g, next_refill
end

if ARGV[1] == 'renew' then
  -- Only a lease still held (deadline not passed) is renewed; a lost one stays gone.
  local deadline = redis.call('ZSCORE', KEYS[1], ARGV[3])
  if not deadline or tonumber(deadline) <= now then
    redis.call('ZREM', KEYS[1], ARGV[3])
    return 0
  end
  local ttl = tonumber(ARGV[2])
  redis.call('ZADD', KEYS[1], 'XX', int(now + ttl), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], int(ttl * 2))
  return 1
end

if ARGV[1] == 'usage' then
  local budget, used, period = credits(2)
  return {math.max(budget - used, 0), used, period}
end

-- admit. 1: concurrency.
local limit = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
-- O(1) when the key has room: lost leases (deadline passed) are reclaimed only when the set
-- looks full, so it never holds more than `limit` members and a refusal counts live ones only.
local held = redis.call('ZCARD', KEYS[1])
if held >= limit then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  held = redis.call('ZCARD', KEYS[1])
  if held >= limit then
    return {0, 'busy', held}
  end
end
local cost = tonumber(ARGV[5] or '1')

-- 2: rate (GCRA: one number per key, see core/src/admission/rate.rs).
local interval = tonumber(ARGV[6] or '0')
local rate_remaining, rate_reset, new_tat = -1, 0, nil
if interval > 0 then
  local tau = tonumber(ARGV[7])
  local tat = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
  local base = math.max(tat, now)
  new_tat = base + interval * cost
  local ahead = new_tat - now
  if ahead > tau then
    return {0, 'rate', ahead - tau, math.max(base - now, 0)}
  end
  rate_remaining = math.floor((tau - ahead) / interval)
  rate_reset = ahead
end

-- 3: credits.
local metered = ARGV[8] ~= nil and ARGV[8] ~= '-'
local budget, used, period, g, next_refill = 0, 0, 0, nil, -1
if metered then
  budget, used, period, g, next_refill = credits(8)
  if used + cost > budget then
    local retry = -1
    if next_refill >= 0 then retry = next_refill - now end
    return {0, 'credits', retry, used, period, g.epoch}
  end
end

-- Every check passed: write.
redis.call('ZADD', KEYS[1], int(now + ttl), ARGV[4])
redis.call('PEXPIRE', KEYS[1], int(ttl * 2))
if new_tat then
  redis.call('SET', KEYS[2], int(new_tat), 'PX', int(math.max(new_tat - now, 1)))
end
local credits_remaining, epoch = -1, 0
if metered then
  used = used + cost
  redis.call('HSET', KEYS[3], 'epoch', int(g.epoch), 'first', int(g.first), 'amount', int(g.amount),
    'interval', int(g.interval), 'period', int(period), 'used', int(used))
  if next_refill >= 0 then
    -- A refilled count is worthless after its period; a one-off grant is kept (no expiry).
    redis.call('PEXPIRE', KEYS[3], int(math.max(next_refill - now, 1) + 1000))
  else
    redis.call('PERSIST', KEYS[3])
  end
  credits_remaining = budget - used
  epoch = g.epoch
end
return {1, held + 1, rate_remaining, rate_reset, credits_remaining, used, period, epoch}
