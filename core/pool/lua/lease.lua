-- Pick an account for one request and reserve a slot and quota on it, atomically.
-- KEYS[1] pool:ids   KEYS[2] sticky key (read only when ARGV[11] == '1')
-- ARGV: 1 acct: prefix, 2 now, 3 mode, 4 min tier rank, 5 cost, 6 default cap, 7 lease ttl, 8 stale after,
--       9 random seed, 10 lease id, 11 use sticky, 12.. excluded account ids
-- Reply: {'ok', id, token, enc, tier, reserved, remaining after ('' = unknown), needs_refresh '1'|'0'}
--    or  {'none', k1, v1, k2, v2, ...} counts and times explaining why nothing was eligible.
local prefix, now, mode = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local min_rank, cost, default_cap = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local ttl, stale_after, seed, lease_id = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10]
local excluded = {}
for i = 12, #ARGV do excluded[ARGV[i]] = true end

local RANK = {basic = 0, super = 1, heavy = 2}
local q = 'q:' .. mode .. ':'
local UNKNOWN_SCORE = 1e12 -- never-measured quota sorts first among the needs-refresh accounts

-- Park-Miller generator seeded by the caller: Redis seeds math.random identically on every call.
local function rand()
  seed = (seed * 16807) % 2147483647
  return seed
end

local why = {total = 0, disabled = 0, invalid = 0, tier_low = 0, excluded = 0, cooling = 0, exhausted = 0, busy = 0}
local cool_until, cool_reason, exhausted_until = nil, '', nil
local candidates = {}

local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', prefix .. id, 'tier', 'enabled', 'state', 'reason', 'until', 'concurrency',
    q .. 'rem', q .. 'tot', q .. 'reset', q .. 'at')
  if f[1] then -- a missing hash is an account deleted under our feet
    why.total = why.total + 1
    local rank = RANK[f[1]] -- nil: tier not detected yet
    local until_ts = num(f[5], 0)
    if f[2] == '0' then
      why.disabled = why.disabled + 1
    elseif f[3] == 'invalid' then
      why.invalid = why.invalid + 1
    elseif rank ~= nil and rank < min_rank then
      why.tier_low = why.tier_low + 1
    elseif excluded[id] then
      why.excluded = why.excluded + 1
    elseif f[3] == 'cooling' and until_ts > now then
      why.cooling = why.cooling + 1
      if cool_until == nil or until_ts < cool_until then cool_until, cool_reason = until_ts, f[4] or '' end
    else
      local rem, tot, reset, at = num(f[7]), num(f[8]), num(f[9]), num(f[10])
      local fresh = at ~= nil and now - at < stale_after
      local usable, refresh, score = true, not fresh, rem
      if rem == nil then
        refresh, score = true, UNKNOWN_SCORE
      elseif rem < cost then
        if reset ~= nil and reset <= now then
          score = tot or cost -- the window has reset since we last looked
          refresh = true
        elseif reset ~= nil or fresh then
          usable = false
          local back = reset or (at + stale_after)
          if exhausted_until == nil or back < exhausted_until then exhausted_until = back end
        end -- stale and no reset time known: probe it, flagged for refresh
      end
      if usable then
        -- An undetected tier sorts late but does not force a refresh once the quota is fresh: asking again
        -- would not reveal it, and a refresh needs the account to itself (see attempt).
        candidates[#candidates + 1] = {
          id = id, score = score, refresh = refresh, late = refresh or rank == nil, tie = rand(),
          cap = num(f[6], default_cap), rem = rem, tot = tot, reset = reset,
          cooled = f[3] == 'cooling',
        }
      else
        why.exhausted = why.exhausted + 1
      end
    end
  end
end

-- Fresh quota before needs-refresh, most remaining first, random among equals; the sticky account goes first.
local function before(a, b)
  if a.late ~= b.late then return not a.late end
  if a.score ~= b.score then return a.score > b.score end
  return a.tie > b.tie
end

-- Take a slot on c if it has one free: reply, or nil when it is busy.
local function attempt(c)
  local akey, lkey = prefix .. c.id, prefix .. c.id .. ':leases'
  c.tried = true
  -- Leases of dead instances expire here; their reserved quota is kept, since upstream may have charged it.
  redis.call('ZREMRANGEBYSCORE', lkey, '-inf', now)
  local live = redis.call('ZCARD', lkey)
  -- A quota refresh must see the account idle: its answer is stored as the truth at settle, so any request
  -- in flight beside it would be counted twice or not at all. While a refreshing lease is live, the account
  -- is busy; a refresh is only granted on an idle account, else a known (if stale) quota is simply reserved.
  local refreshing = redis.call('HGET', akey, 'refreshing')
  local refresh = c.refresh
  if refresh and live > 0 then
    if c.rem == nil then live = c.cap else refresh = false end
  end
  if live >= c.cap or (refreshing and refreshing ~= '' and redis.call('ZSCORE', lkey, refreshing)) then
    why.busy = why.busy + 1
    return nil
  end
  redis.call('HSET', akey, 'refreshing', refresh and lease_id or '')
  redis.call('ZADD', lkey, now + ttl, lease_id)
  redis.call('EXPIRE', lkey, math.ceil(ttl) + 60)
  local reserved, remaining = 0, ''
  if c.rem ~= nil then
    local base = c.rem
    if base < cost and c.reset ~= nil and c.reset <= now and c.tot ~= nil then base = c.tot end
    local after = math.max(base - cost, 0)
    reserved, remaining = base - after, fmt(after)
    redis.call('HSET', akey, q .. 'rem', remaining)
    if c.reset ~= nil and c.reset <= now then redis.call('HSET', akey, q .. 'reset', '') end
  end
  if c.cooled then redis.call('HSET', akey, 'state', 'active', 'reason', '', 'until', '') end
  local t = redis.call('HMGET', akey, 'token', 'enc', 'tier')
  return {'ok', c.id, t[1], t[2] or 'none', t[3] or 'unknown', fmt(reserved), remaining, refresh and '1' or '0'}
end

-- Usually the sticky or the best account is free: find those in one pass, and sort only when they are busy.
local sticky_id = ARGV[11] == '1' and redis.call('GET', KEYS[2]) or nil
local sticky, best = nil, nil
for _, c in ipairs(candidates) do
  if c.id == sticky_id then sticky = c end
  if best == nil or before(c, best) then best = c end
end
for _, c in ipairs({sticky or best, best}) do
  if not c.tried then
    local reply = attempt(c)
    if reply then return reply end
  end
end
if why.busy < #candidates then
  table.sort(candidates, before)
  for _, c in ipairs(candidates) do
    if not c.tried then
      local reply = attempt(c)
      if reply then return reply end
    end
  end
end

local reply = {'none'}
for k, v in pairs(why) do
  reply[#reply + 1] = k
  reply[#reply + 1] = fmt(v)
end
for k, v in pairs({cool_until = cool_until, exhausted_until = exhausted_until}) do
  reply[#reply + 1] = k
  reply[#reply + 1] = fmt(v)
end
reply[#reply + 1] = 'cool_reason'
reply[#reply + 1] = cool_reason
return reply
