-- Hand a lease back: free the slot, true up the quota, count usage, apply the failure rules. All in one step.
-- KEYS[1] acct:<id>  KEYS[2] acct:<id>:leases  KEYS[3] usage:<day>  KEYS[4] pool:egress  KEYS[5] sticky key
-- KEYS[6] a key the request keeps with its answer (e.g. a stored response), written when ARGV after the windows
--         give a value and a TTL: the same step, no extra command
-- ARGV after the windows: keep value ('' = none), keep TTL, then optionally the request's ledger (core/ledger,
-- apply.lua: its log entry, stats and key usage, packed in one argument), applied in this step too
-- ARGV: 1..8 context (common.lua), 9 lease id ('' = no lease, e.g. a quota refresh failed), 10 mode,
--       11 reserved, 12 charged, 13 lease started at, 14 outcome (ok|fail|cancel), 15 failure kind, 16 message,
--       17 retry after ('' = none), 18 quota exhausted (1|0), 19 model, 20 prompt tokens, 21 completion tokens,
--       22 latency ms, 23 account id, 24 remember sticky (1|0), 25 sticky ttl, 26 rate-limit cooldown,
--       27 exhausted cooldown, 28 backoff base, 29 backoff max, 30 strikes to invalidate on 401, 31 on blocked,
--       32 detected tier ('' = none), 33 lease member ('' = none), 34 window count, 35.. windows (apply_windows)
-- Reply: {state, reason, until, remaining in mode, strikes}
local akey, lkey, ekey, skey = KEYS[1], KEYS[2], KEYS[4], KEYS[5]
local now, lease_id, mode = NOW, ARGV[9], ARGV[10]
local reserved, charged, started = tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
local outcome, kind, message = ARGV[14], ARGV[15], ARGV[16]
local retry_after, quota_exhausted = num(ARGV[17]), ARGV[18] == '1'
local model, id, member = ARGV[19], ARGV[23], ARGV[33]
local q = 'q:' .. mode .. ':'

local keep_at = 35 + 5 * tonumber(ARGV[34])
if KEYS[6] and ARGV[keep_at] and ARGV[keep_at] ~= '' then
  redis.call('SET', KEYS[6], ARGV[keep_at], 'EX', tonumber(ARGV[keep_at + 1]))
end

-- live: the lease was still ours. A lease already dropped as an orphan (expired, or reclaimed after a restart)
-- was counted then and its reservation stands, so a late settle counts nothing and refunds nothing.
local live, tracked = 0, 0
if lease_id ~= '' then
  live = redis.call('ZREM', lkey, lease_id)
  tracked = redis.call('ZREM', LEASES, member)
  local iid = instance_of(lease_id)
  if iid then redis.call('SREM', instk(iid), member) end
end
local dropped = lease_id ~= '' and live == 0 and tracked == 0
-- The ledger once per lease: a settle retried after its reply was lost (the lease is gone by then) must not log
-- and count the request twice. (A lease dropped as an orphan before its settle loses its log entry too.)
if not dropped then apply_ledger(ARGV[keep_at + 2]) end

local egress = kind == 'cloudflare' or kind == 'anti_bot'
if outcome ~= 'cancel' and UTTL > 0 and not dropped then -- usage ttl 0: not a request (a failed refresh)
  if model ~= '' then count_usage('m:' .. model .. ':', outcome, tonumber(ARGV[20]), tonumber(ARGV[21]), ARGV[22]) end
  if not egress then count_usage('a:' .. id .. ':', outcome, tonumber(ARGV[20]), tonumber(ARGV[21]), ARGV[22]) end
  redis.call('EXPIRE', UKEY, UTTL)
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

if ARGV[32] ~= '' then redis.call('HSET', akey, 'tier', ARGV[32]) end
local windows = tonumber(ARGV[34])
if windows > 0 then
  apply_windows(akey, 35, windows, now)
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
  if not dropped then redis.call('HINCRBY', akey, 'requests', 1) end
  redis.call('HSET', akey, 'last_used_at', fmt(now), 'strikes', 0, 'fails', 0)
  local state = redis.call('HMGET', akey, 'state', 'reason')
  if state[1] == 'cooling' and string.sub(state[2] or '', 1, 8) == 'backoff:' then
    redis.call('HSET', akey, 'state', 'active', 'reason', '', 'until', '')
  end
  if ARGV[24] == '1' then redis.call('SET', skey, id, 'EX', tonumber(ARGV[25])) end
elseif outcome == 'fail' and egress then
  -- Cloudflare challenge or anti-bot rejection: our egress (IP, cf_clearance, user agent, statsig) is at fault.
  redis.call('HINCRBY', ekey, kind, 1)
  redis.call('HSET', ekey, 'last_at', fmt(now), 'last_kind', kind, 'last_message', message, 'last_account', id)
elseif outcome == 'fail' then
  if lease_id ~= '' and not dropped then redis.call('HINCRBY', akey, 'requests', 1) end
  redis.call('HINCRBY', akey, 'failures', 1)
  redis.call('HSET', akey, 'last_used_at', fmt(now), 'last_error', kind .. ': ' .. message, 'last_error_at', fmt(now))
  if kind == 'rate_limited' then
    if quota_exhausted or (rem_reserved ~= nil and rem_reserved <= 0) or (rem ~= nil and rem <= 0) then
      -- Out of quota in this mode: skip the mode (not the account) until the window resets.
      -- Retry-After wins, then a reset time upstream told us earlier, then the configured fallback.
      local reset = num(redis.call('HGET', akey, q .. 'reset'), 0)
      local back = now + (retry_after or tonumber(ARGV[27]))
      if retry_after == nil and reset > now then back = reset end
      redis.call('HSET', akey, q .. 'rem', 0, q .. 'reset', fmt(back))
      rem = 0
    else
      cool('rate limited: ' .. message, retry_after or tonumber(ARGV[26]))
      -- We believed quota was left: our number may be wrong. Mark it stale so the next lease refreshes it.
      if windows == 0 then redis.call('HSET', akey, q .. 'at', '') end
    end
  elseif kind == 'unauthorized' then
    strike(tonumber(ARGV[30]), 'session rejected (401): ' .. message)
  elseif kind == 'blocked' then
    strike(tonumber(ARGV[31]), 'account blocked (403): ' .. message)
  elseif kind == 'server' or kind == 'network' or kind == 'timeout' or kind == 'stream' then
    local fails = redis.call('HINCRBY', akey, 'fails', 1)
    local delay = math.min(tonumber(ARGV[28]) * 2 ^ (fails - 1), tonumber(ARGV[29]))
    cool('backoff: ' .. kind .. ': ' .. message, delay)
  end -- bad_request: the request's fault, the account stays as it is
end

sync(id)
local s = redis.call('HMGET', akey, 'state', 'reason', 'until', 'strikes')
return {s[1] or 'active', s[2] or '', s[3] or '', rem == nil and '' or fmt(rem), s[4] or '0'}
