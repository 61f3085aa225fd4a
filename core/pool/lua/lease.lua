-- Pick an account for one request and reserve a slot and quota on it, atomically, from the index (common.lua):
-- O(log N) in the pool size, whatever the number of accounts.
-- ARGV: 1..8 context, 9 mode, 10 min tier rank, 11 cost, 12 lease ttl, 13 lease id, 14 model,
--       15 sticky key ('' = none), 16.. excluded account ids
-- KEYS: 1 pool:ids, 2 (optional) the run-time settings' version key
-- Reply: {'ok', id, token, enc, tier, reserved, remaining after ('' = unknown), needs_refresh '1'|'0', expires at,
--         settings version ('' = none)}
--    or  {'none', k1, v1, k2, v2, ...} counts and times explaining why nothing was eligible (from the index:
--        exact for the reasons that decide, see _explain), or {'reindex'} when the index was never built.
local mode, min_rank, cost, ttl = ARGV[9], tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local lease_id, model, sticky_key = ARGV[13], ARGV[14], ARGV[15]
local excluded, n_excluded = {}, 0
for i = 16, #ARGV do
  excluded[ARGV[i]] = true
  n_excluded = n_excluded + 1
end
local q = 'q:' .. mode .. ':'

if redis.call('EXISTS', X .. 'ixv') == 0 and redis.call('ZCARD', X .. 'ids') > 0 then return {'reindex'} end
sweep(mode)

-- Check c against the account itself (the index can lag behind time, e.g. a cooldown that just started
-- elsewhere is already in the hash) and take a slot: reply, or nil. A disagreement re-syncs the account.
local function attempt(id, indexed)
  if excluded[id] then return nil end
  local akey, lkey = A .. id, A .. id .. ':leases'
  local f = redis.call('HMGET', akey, 'tier', 'enabled', 'state', 'until', 'concurrency', q .. 'rem', q .. 'tot',
    q .. 'reset', q .. 'at', 'refreshing')
  local function skip()
    if indexed then sync(id, true) end
    return nil
  end
  if not f[2] then return skip() end -- deleted under our feet
  local rank = RANK[f[1]]
  if f[2] == '0' or f[3] == 'invalid' or (rank ~= nil and rank < min_rank)
      or (f[3] == 'cooling' and num(f[4], 0) > NOW) then
    return skip()
  end
  local rem, tot, reset, at = num(f[6]), num(f[7]), num(f[8]), num(f[9])
  local fresh = at ~= nil and NOW - at < STALE
  local refresh = not fresh
  if rem == nil then
    refresh = true
  elseif rem < cost then
    if reset ~= nil and reset <= NOW then
      refresh = true -- the window has reset since we last looked
    elseif reset ~= nil or fresh then
      return skip() -- out of quota (until the reset, or until a refresh could show more)
    end -- stale and no reset time known: probe it, flagged for refresh
  end
  -- A quota refresh must see the account idle: its answer is stored as the truth at settle, so any request in
  -- flight beside it would be counted twice or not at all. While a refreshing lease is live the account is
  -- busy; a refresh is only granted on an idle account, else a known (if stale) quota is simply reserved.
  local live = redis.call('ZCOUNT', lkey, '(' .. fmt(NOW), '+inf')
  if refresh and live > 0 then
    if rem == nil then return skip() end
    refresh = false
  end
  local refreshing = f[10]
  if live >= num(f[5], CAP)
      or (refreshing and refreshing ~= '' and num(redis.call('ZSCORE', lkey, refreshing), 0) > NOW) then
    return skip()
  end
  local expires = NOW + ttl
  redis.call('HSET', akey, 'refreshing', refresh and lease_id or '')
  redis.call('ZADD', lkey, expires, lease_id)
  redis.call('EXPIRE', lkey, math.ceil(ttl) + 60)
  local member = lease_member(id, lease_id, model)
  redis.call('ZADD', LEASES, expires, member)
  local iid = instance_of(lease_id)
  if iid then redis.call('SADD', instk(iid), member) end
  local reserved, remaining = 0, ''
  if rem ~= nil then
    local base = rem
    if base < cost and reset ~= nil and reset <= NOW and tot ~= nil then base = tot end
    local after = math.max(base - cost, 0)
    reserved, remaining = base - after, fmt(after)
    redis.call('HSET', akey, q .. 'rem', remaining)
    if reset ~= nil and reset <= NOW then redis.call('HSET', akey, q .. 'reset', '') end
  end
  if f[3] == 'cooling' then redis.call('HSET', akey, 'state', 'active', 'reason', '', 'until', '') end
  sync(id, false, mode)
  local t = redis.call('HMGET', akey, 'token', 'enc', 'tier')
  -- KEYS[2]: the run-time settings' version stamp, returned so the caller sees a change at no extra command
  local version = KEYS[2] and redis.call('GET', KEYS[2]) or ''
  return {'ok', id, t[1], t[2] or 'none', t[3] or 'unknown', fmt(reserved), remaining, refresh and '1' or '0',
    fmt(expires), version or ''}
end

-- The conversation's last account first, if it can serve.
if sticky_key ~= '' then
  local sticky = redis.call('GET', sticky_key)
  if sticky then
    local reply = attempt(sticky, false)
    if reply then return reply end
  end
end

-- Then from the index: fresh quota on a tier >= min (most remaining first), then everything that needs a
-- refresh or has no tier yet (unknown quota first, then most remaining). Each source is read best-first in
-- small pages; the excluded accounts are the only ones expected to be skipped, so one page usually does.
local fresh_sources, late_sources = {}, {}
for _, tier in ipairs(TIERS) do
  local key = ix(mode, tier)
  if tier == 'unknown' then -- no tier yet: after every known one, even with fresh quota
    late_sources[#late_sources + 1] = {key = key, max = FRESH_TOP, min = cost, shift = 0}
    late_sources[#late_sources + 1] = {key = key, max = LATE_TOP, min = LATE_BASE, shift = 2e12}
  elseif RANK[tier] >= min_rank then
    fresh_sources[#fresh_sources + 1] = {key = key, max = FRESH_TOP, min = cost, shift = 0}
    late_sources[#late_sources + 1] = {key = key, max = LATE_TOP, min = LATE_BASE, shift = 2e12}
  end
end

-- Random among equals: the best candidate's group (same integer part of the score) may be far larger than a
-- page, so draw one member of the whole group by rank, O(log N). Only sources whose best is in the group can
-- hold members of it.
local function draw(sources, tops, g)
  local spans, n = {}, 0
  for i, s in ipairs(sources) do
    if tops[i] and math.floor(tops[i]) == g then
      local count = redis.call('ZCOUNT', s.key, fmt(g - s.shift), '(' .. fmt(g + 1 - s.shift))
      spans[#spans + 1] = {key = s.key, above = redis.call('ZCOUNT', s.key, fmt(g + 1 - s.shift), '+inf'),
        count = count}
      n = n + count
    end
  end
  if n <= 1 then return nil end
  local r = rand() % n
  for _, span in ipairs(spans) do
    if r < span.count then return redis.call('ZREVRANGE', span.key, span.above + r, span.above + r)[1] end
    r = r - span.count
  end
end

for _, sources in ipairs({fresh_sources, late_sources}) do
  local offset, page = 0, n_excluded + 2
  for round = 1, 4 do
    local candidates, tops, more = {}, {}, false
    for i, s in ipairs(sources) do
      local got = redis.call('ZREVRANGEBYSCORE', s.key, s.max, s.min, 'WITHSCORES', 'LIMIT', offset, page)
      if #got >= page * 2 then more = true end
      for j = 1, #got, 2 do
        local score = tonumber(got[j + 1]) + s.shift
        if j == 1 then tops[i] = score end
        candidates[#candidates + 1] = {id = got[j], score = score}
      end
    end
    if #candidates == 0 then break end
    if #candidates > 1 then table.sort(candidates, function(a, b) return a.score > b.score end) end
    if round == 1 then
      local pick = draw(sources, tops, math.floor(candidates[1].score))
      if pick then
        local reply = attempt(pick, true)
        if reply then return reply end
      end
    end
    for _, c in ipairs(candidates) do
      local reply = attempt(c.id, true)
      if reply then return reply end
    end
    if not more then break end
    offset = offset + page
    page = 16
  end
end

-- Nothing free: explain why from the index's counts, without looking at every account.
local why = {
  total = redis.call('ZCARD', X .. 'ids'), disabled = redis.call('SCARD', OFF), invalid = redis.call('SCARD', BAD),
  cooling = redis.call('ZCOUNT', COOL, '(' .. fmt(NOW), '+inf'), tier_low = 0, excluded = 0, exhausted = 0, busy = 0,
}
local eligible = {}
for _, tier in ipairs(TIERS) do
  if tier == 'unknown' or RANK[tier] >= min_rank then
    eligible[tier] = true
    local w = ixb(mode, tier)
    why.busy = why.busy + redis.call('ZCOUNT', w, cost, FRESH_TOP) + redis.call('ZCOUNT', w, LATE_BASE, LATE_TOP)
    -- fresh but fewer units left than this request costs
    why.exhausted = why.exhausted + redis.call('ZCOUNT', ix(mode, tier), 0, '(' .. cost)
      + redis.call('ZCOUNT', w, 0, '(' .. cost)
  else
    why.tier_low = why.tier_low + redis.call('ZCARD', ix(mode, tier)) + redis.call('ZCARD', ixb(mode, tier))
  end
end
why.exhausted = why.exhausted + redis.call('ZCARD', exk(mode))
for id in pairs(excluded) do
  local tier = redis.call('HGET', A .. id, 'ixt')
  if tier and eligible[tier] then
    local ready, waiting = redis.call('ZSCORE', ix(mode, tier), id), redis.call('ZSCORE', ixb(mode, tier), id)
    if ready or waiting then why.excluded = why.excluded + 1 end
    if waiting and (tonumber(waiting) >= cost or tonumber(waiting) < -1e12) then why.busy = why.busy - 1 end
  end
end

local reply = {'none'}
for k, v in pairs(why) do
  reply[#reply + 1] = k
  reply[#reply + 1] = fmt(v)
end
local first = redis.call('ZRANGEBYSCORE', COOL, '(' .. fmt(NOW), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if #first > 0 then
  reply[#reply + 1] = 'cool_until'
  reply[#reply + 1] = first[2]
  reply[#reply + 1] = 'cool_reason'
  reply[#reply + 1] = redis.call('HGET', A .. first[1], 'reason') or ''
end
local back = nil
local out = redis.call('ZRANGE', exk(mode), 0, 0, 'WITHSCORES')
if #out > 0 then back = tonumber(out[2]) end
for tier in pairs(eligible) do -- fresh and short: back when the quota turns stale and can be probed
  local low = redis.call('ZRANGEBYSCORE', ix(mode, tier), 0, '(' .. cost, 'LIMIT', 0, 1)
  if #low > 0 then
    local at = num(redis.call('HGET', A .. low[1], q .. 'at'))
    if at and (back == nil or at + STALE < back) then back = at + STALE end
  end
end
if back then
  reply[#reply + 1] = 'exhausted_until'
  reply[#reply + 1] = fmt(back)
end
return reply
