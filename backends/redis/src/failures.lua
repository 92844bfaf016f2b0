-- keycel failed-authentication budget of one subject (a client address or client id): core's
-- `throttle::Debt` (GCRA kept as debt) on Redis's clock, so every process of a fleet charges
-- one budget. Same arithmetic as `core/src/throttle.rs` (tests/failures.rs compares them).
-- KEYS[1] `{keycel:fail:<kind>:<key>}`: hash {ms = debt in ms, at = when written (ms)}
-- ARGV: 1 op ("charge" | "refund"), 2 interval_ms, 3 tolerance_ms
--   -> 0 (charged / refunded) | wait_ms > 0 (refused; nothing written)
-- The hash expires a window (interval + tolerance) after its last write: the debt is paid by then.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval, tolerance = tonumber(ARGV[2]), tonumber(ARGV[3])
local s = redis.call('HMGET', KEYS[1], 'ms', 'at')
local ms, at = tonumber(s[1]) or 0, tonumber(s[2]) or 0
-- The debt left now (time only pays back; a step back pays nothing).
local debt = ms - math.max(now - at, 0)
if debt < 0 then debt = 0 end
if ARGV[1] == 'refund' then
  if s[1] then
    redis.call('HSET', KEYS[1], 'ms', math.max(debt - interval, 0), 'at', math.max(now, at))
    redis.call('PEXPIRE', KEYS[1], interval + tolerance)
  end
  return 0
end
local next = debt + interval
if next > tolerance + interval then
  return next - interval - tolerance
end
redis.call('HSET', KEYS[1], 'ms', next, 'at', now)
redis.call('PEXPIRE', KEYS[1], interval + tolerance)
return 0
