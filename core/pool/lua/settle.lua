-- Hand a lease back: free the slot, true up the quota, count usage, apply the failure rules. All in one step.
-- KEYS[1] acct:<id>  KEYS[2] acct:<id>:leases  KEYS[3] usage:<day>  KEYS[4] pool:egress  KEYS[5] sticky key
-- ARGV: 1 now, 2 lease id ('' = no lease, e.g. a quota refresh failed), 3 mode, 4 reserved, 5 charged,
--       6 lease started at, 7 outcome (ok|fail|cancel), 8 failure kind, 9 message, 10 retry after ('' = none),
--       11 quota exhausted (1|0), 12 model, 13 prompt tokens, 14 completion tokens, 15 latency ms, 16 account id,
--       17 remember sticky (1|0), 18 sticky ttl, 19 usage ttl, 20 rate-limit cooldown, 21 exhausted cooldown,
--       22 backoff base, 23 backoff max, 24 strikes to invalidate on 401, 25 on blocked,
--       26 detected tier ('' = none), 27 window count, 28.. windows (see apply_windows)
-- Reply: {state, reason, until, remaining in mode, strikes}
local akey, lkey, ukey, ekey, skey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now, lease_id, mode = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local reserved, charged, started = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local outcome, kind, message = ARGV[7], ARGV[8], ARGV[9]
local retry_after, quota_exhausted = num(ARGV[10]), ARGV[11] == '1'
local model, id = ARGV[12], ARGV[16]
local q = 'q:' .. mode .. ':'

local live = 0
if lease_id ~= '' then live = redis.call('ZREM', lkey, lease_id) end

-- Usage: one hash per day, so this stays inside the same command.
local function count(prefix)
  redis.call('HINCRBY', ukey, prefix .. 'req', 1)
  redis.call('HINCRBY', ukey, prefix .. (outcome == 'ok' and 'ok' or 'fail'), 1)
  if outcome == 'ok' then
    redis.call('HINCRBY', ukey, prefix .. 'pt', tonumber(ARGV[13]))
    redis.call('HINCRBY', ukey, prefix .. 'ct', tonumber(ARGV[14]))
  end
  redis.call('HINCRBYFLOAT', ukey, prefix .. 'ms', ARGV[15])
end
local egress = kind == 'cloudflare' or kind == 'anti_bot'
if outcome ~= 'cancel' and ARGV[19] ~= '0' then -- usage ttl 0: not a request (e.g. a failed quota refresh)
  if model ~= '' then count('m:' .. model .. ':') end
  if not egress then count('a:' .. id .. ':') end
  redis.call('EXPIRE', ukey, tonumber(ARGV[19]))
end

if redis.call('EXISTS', akey) == 0 then return {'deleted', '', '', '', '0'} end

-- True up the reservation, unless the lease already expired (its reservation stands) or a quota refresh since
-- the lease started replaced our local arithmetic with upstream's own number.
local rem = num(redis.call('HGET', akey, q .. 'rem'))
local rem_reserved = rem -- what was left with this request's reservation taken out
local refreshed = num(redis.call('HGET', akey, q .. 'at'), 0)
if live == 1 and rem ~= nil and charged ~= reserved and refreshed <= started then
  rem = math.max(rem + reserved - charged, 0)
  redis.call('HSET', akey, q .. 'rem', fmt(rem))
end

if ARGV[26] ~= '' then redis.call('HSET', akey, 'tier', ARGV[26]) end
local windows = tonumber(ARGV[27])
if windows > 0 then
  apply_windows(akey, 28, windows, now)
  rem = num(redis.call('HGET', akey, q .. 'rem'))
end

local function cool(reason, seconds)
  local until_ts = now + seconds
  local current = redis.call('HMGET', akey, 'state', 'until')
  if current[1] == 'cooling' and num(current[2], 0) > until_ts then return end -- keep the longer cooldown
  redis.call('HSET', akey, 'state', 'cooling', 'reason', reason, 'until', fmt(until_ts))
end

local function strike(limit, reason)
  local strikes = redis.call('HINCRBY', akey, 'strikes', 1)
  if strikes >= limit then
    redis.call('HSET', akey, 'state', 'invalid', 'reason', reason, 'until', '')
  end
end

if outcome == 'ok' then
  redis.call('HINCRBY', akey, 'requests', 1)
  redis.call('HSET', akey, 'last_used_at', fmt(now), 'strikes', 0, 'fails', 0)
  local state = redis.call('HMGET', akey, 'state', 'reason')
  if state[1] == 'cooling' and string.sub(state[2] or '', 1, 8) == 'backoff:' then
    redis.call('HSET', akey, 'state', 'active', 'reason', '', 'until', '')
  end
  if ARGV[17] == '1' then redis.call('SET', skey, id, 'EX', tonumber(ARGV[18])) end
elseif outcome == 'fail' and egress then
  -- Cloudflare challenge or anti-bot rejection: our egress (IP, cf_clearance, user agent, statsig) is at fault.
  redis.call('HINCRBY', ekey, kind, 1)
  redis.call('HSET', ekey, 'last_at', fmt(now), 'last_kind', kind, 'last_message', message, 'last_account', id)
elseif outcome == 'fail' then
  if lease_id ~= '' then redis.call('HINCRBY', akey, 'requests', 1) end
  redis.call('HINCRBY', akey, 'failures', 1)
  redis.call('HSET', akey, 'last_used_at', fmt(now), 'last_error', kind .. ': ' .. message, 'last_error_at', fmt(now))
  if kind == 'rate_limited' then
    if quota_exhausted or (rem_reserved ~= nil and rem_reserved <= 0) or (rem ~= nil and rem <= 0) then
      -- Out of quota in this mode: skip the mode (not the account) until the window resets.
      -- Retry-After wins, then a reset time upstream told us earlier, then the configured fallback.
      local reset = num(redis.call('HGET', akey, q .. 'reset'), 0)
      local back = now + (retry_after or tonumber(ARGV[21]))
      if retry_after == nil and reset > now then back = reset end
      redis.call('HSET', akey, q .. 'rem', 0, q .. 'reset', fmt(back))
      rem = 0
    else
      cool('rate limited: ' .. message, retry_after or tonumber(ARGV[20]))
      -- We believed quota was left: our number may be wrong. Mark it stale so the next lease refreshes it.
      if windows == 0 then redis.call('HSET', akey, q .. 'at', '') end
    end
  elseif kind == 'unauthorized' then
    strike(tonumber(ARGV[24]), 'session rejected (401): ' .. message)
  elseif kind == 'blocked' then
    strike(tonumber(ARGV[25]), 'account blocked (403): ' .. message)
  elseif kind == 'server' or kind == 'network' or kind == 'timeout' or kind == 'stream' then
    local fails = redis.call('HINCRBY', akey, 'fails', 1)
    local delay = math.min(tonumber(ARGV[22]) * 2 ^ (fails - 1), tonumber(ARGV[23]))
    cool('backoff: ' .. kind .. ': ' .. message, delay)
  end -- bad_request: the request's fault, the account stays as it is
end

local s = redis.call('HMGET', akey, 'state', 'reason', 'until', 'strikes')
return {s[1] or 'active', s[2] or '', s[3] or '', rem == nil and '' or fmt(rem), s[4] or '0'}
