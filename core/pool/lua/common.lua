-- Helpers prepended to every pool script (scripts.py concatenates this file with the script).
-- Times are epoch seconds (floats) sent by the caller; numbers are stored as strings.
--
-- Every script that changes an account receives the same context in ARGV[1..8] (see TokenPool._context):
--   1 acct: prefix, 2 pool: prefix, 3 now, 4 stale after, 5 default concurrency cap, 6 random seed,
--   7 usage:<day> key, 8 usage ttl (seconds)
-- and keeps the account's index entries true (sync) in the same atomic step: the index is never rebuilt by a
-- background task, and no lease scans the pool.

local function num(value, default)
  if value == false or value == nil or value == '' then return default end
  local n = tonumber(value)
  if n == nil then return default end
  return n
end

-- Lua numbers in replies are truncated to integers by Redis, and tostring() may use exponents: format ourselves.
local function fmt(n)
  if n == nil then return '' end
  if n == math.floor(n) and math.abs(n) < 1e15 then return string.format('%d', n) end
  return string.format('%.3f', n)
end

-- Store quota windows given as ARGV groups of 5 (kind, remaining, total, window_seconds, resets_at) from ARGV[first].
-- Quota that is back above zero clears the reset time, which is what ends an "exhausted" cooldown.
local function apply_windows(akey, first, count, now)
  for i = 0, count - 1 do
    local base = first + i * 5
    local kind = ARGV[base]
    local q = 'q:' .. kind .. ':'
    local rem = num(ARGV[base + 1])
    local reset = ARGV[base + 4]
    if rem ~= nil and rem > 0 then reset = '' end
    redis.call('HSET', akey, q .. 'rem', ARGV[base + 1], q .. 'tot', ARGV[base + 2], q .. 'win', ARGV[base + 3],
      q .. 'reset', reset, q .. 'at', fmt(now))
  end
  if count > 0 then redis.call('HSET', akey, 'q_at', fmt(now)) end
end

-- ---------------------------------------------------------------------------------------------------------------
-- The index (keys under the pool: prefix; layout in keys.py)
--   ix:<mode>:<tier>   ZSET  accounts that can take a lease in that mode now, scored by preference
--   ixb:<mode>:<tier>  ZSET  the same, but at their concurrency cap (what a waiting lease waits for)
--   fr:<mode>          ZSET  accounts with fresh quota in the mode -> refreshed at (finds those turning stale)
--   ex:<mode>          ZSET  accounts out of quota in the mode -> reset time
--   cooling            ZSET  cooling accounts -> cooldown end
--   disabled, invalid  SET   tier:<tier> SET (counts for listings and explanations)
--   leases             ZSET  "<account>|<lease id>|<model>" -> expiry: every live lease, for expiry and reclaim
--   inst:<instance>    SET   the same members, for the leases of one INSTANCE_ID
-- Scores in ix/ixb: fresh known quota = remaining + jitter, in [0, 1e12); needing a refresh (stale, unknown,
-- window reset) = -2e12 + value + jitter, in [-2e12, -1e12), value = remaining, or 1e12 - 1 when unknown so
-- those sort first. The jitter (< 0.5, new at every sync) makes equal accounts come out in random order.

local A, X = ARGV[1], ARGV[2]
local NOW, STALE, CAP = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local SEED = tonumber(ARGV[6]) or 1
local UKEY, UTTL = ARGV[7], tonumber(ARGV[8]) or 0

local MODES = {'auto', 'fast', 'expert', 'heavy', 'image', 'image_pro', 'image_edit', 'video', 'video_720p'}
local TIERS = {'heavy', 'super', 'basic', 'unknown'}
local RANK = {basic = 0, super = 1, heavy = 2}
local FRESH_TOP, LATE_TOP, LATE_BASE = '(1000000000000', '(-1000000000000', '-2000000000000'
local UNKNOWN_V = 999999999999
local SWEEP = 16 -- entries each sweep handles per lease: bounded work, and a backlog drains over a few leases

local LEASES, COOL, OFF, BAD = X .. 'leases', X .. 'cooling', X .. 'disabled', X .. 'invalid'
local function ix(mode, tier) return X .. 'ix:' .. mode .. ':' .. tier end
local function ixb(mode, tier) return X .. 'ixb:' .. mode .. ':' .. tier end
local function frk(mode) return X .. 'fr:' .. mode end
local function exk(mode) return X .. 'ex:' .. mode end
local function tierk(tier) return X .. 'tier:' .. tier end
local function instk(iid) return X .. 'inst:' .. iid end

-- Park-Miller generator seeded by the caller: Redis seeds math.random identically on every call.
local function rand()
  SEED = (SEED * 16807) % 2147483647
  return SEED
end

-- One mode's quota as the index sees it: 'fresh' (known, recent), 'late' (needs a refresh first) or 'out'
-- (nothing left until a known reset time), with the value it is ordered by.
local function judge(rem, tot, reset, at)
  local fresh = at ~= nil and NOW - at < STALE
  if rem == nil then return 'late', UNKNOWN_V, fresh end
  if rem <= 0 and reset ~= nil then
    if reset > NOW then return 'out', reset, fresh end
    return 'late', tot or 1, fresh -- the window has reset since we last looked
  end
  if fresh then return 'fresh', rem, true end
  return 'late', rem, false -- stale: probed even when it looked empty, flagged for refresh
end

local FIELDS = {'tier', 'enabled', 'state', 'until', 'concurrency', 'refreshing', 'ixt'}
for _, m in ipairs(MODES) do
  for _, s in ipairs({'rem', 'tot', 'reset', 'at'}) do FIELDS[#FIELDS + 1] = 'q:' .. m .. ':' .. s end
end

-- Remove an account from every index (deleted, or found missing).
local function forget(id)
  for _, m in ipairs(MODES) do
    for _, t in ipairs(TIERS) do
      redis.call('ZREM', ix(m, t), id)
      redis.call('ZREM', ixb(m, t), id)
    end
    redis.call('ZREM', frk(m), id)
    redis.call('ZREM', exk(m), id)
  end
  for _, t in ipairs(TIERS) do redis.call('SREM', tierk(t), id) end
  redis.call('ZREM', COOL, id)
  redis.call('SREM', OFF, id)
  redis.call('SREM', BAD, id)
end

-- Put the account where its hash says it belongs, in every mode. Idempotent; ~40 O(log N) commands.
local function sync(id)
  local akey, lkey = A .. id, A .. id .. ':leases'
  local f = redis.call('HMGET', akey, unpack(FIELDS))
  if not f[2] then return forget(id) end -- 'enabled' is always set: the hash is gone
  local tier = RANK[f[1]] and f[1] or 'unknown'
  local old = f[7]
  if old ~= tier then
    if old then
      for _, m in ipairs(MODES) do
        redis.call('ZREM', ix(m, old), id)
        redis.call('ZREM', ixb(m, old), id)
      end
      redis.call('SREM', tierk(old), id)
    end
    redis.call('SADD', tierk(tier), id)
    redis.call('HSET', akey, 'ixt', tier)
  end
  local disabled = f[2] == '0'
  local invalid = not disabled and f[3] == 'invalid'
  local until_ts = num(f[4], 0)
  local cooling = not disabled and not invalid and f[3] == 'cooling' and until_ts > NOW
  if disabled then redis.call('SADD', OFF, id) else redis.call('SREM', OFF, id) end
  if invalid then redis.call('SADD', BAD, id) else redis.call('SREM', BAD, id) end
  if cooling then redis.call('ZADD', COOL, until_ts, id) else redis.call('ZREM', COOL, id) end
  local serving = not (disabled or invalid or cooling)
  local live, refreshing = 0, false
  if serving then
    live = redis.call('ZCOUNT', lkey, '(' .. fmt(NOW), '+inf')
    if f[6] and f[6] ~= '' then refreshing = num(redis.call('ZSCORE', lkey, f[6]), 0) > NOW end
  end
  -- A refresh must have the account to itself: while one is live, or any lease is, where the quota is
  -- unknown (a lease there would have to refresh), the account waits in ixb.
  local full = refreshing or live >= num(f[5], CAP)
  for i, m in ipairs(MODES) do
    local b = 7 + (i - 1) * 4
    local rem, tot, reset, at = num(f[b + 1]), num(f[b + 2]), num(f[b + 3]), num(f[b + 4])
    local region, v = judge(rem, tot, reset, at)
    local ready, waiting = ix(m, tier), ixb(m, tier)
    if serving and region ~= 'out' then
      local score
      if region == 'fresh' then
        score = math.min(math.max(v, 0), UNKNOWN_V - 1) + (rand() % 500) / 1000
      else
        score = -2e12 + math.min(math.max(v, 0), UNKNOWN_V) + (rand() % 500) / 1000
      end
      local busy = full or (live > 0 and rem == nil)
      redis.call('ZADD', busy and waiting or ready, score, id)
      redis.call('ZREM', busy and ready or waiting, id)
      if region == 'fresh' then redis.call('ZADD', frk(m), at, id) else redis.call('ZREM', frk(m), id) end
      redis.call('ZREM', exk(m), id)
    else
      redis.call('ZREM', ready, id)
      redis.call('ZREM', waiting, id)
      redis.call('ZREM', frk(m), id)
      if serving then redis.call('ZADD', exk(m), v, id) else redis.call('ZREM', exk(m), id) end
    end
  end
end

-- Usage: one hash per day, so counting stays inside the command that settles.
local function count_usage(prefix, result, pt, ct, ms)
  redis.call('HINCRBY', UKEY, prefix .. 'req', 1)
  redis.call('HINCRBY', UKEY, prefix .. (result == 'ok' and 'ok' or 'fail'), 1)
  if result == 'ok' then
    redis.call('HINCRBY', UKEY, prefix .. 'pt', pt)
    redis.call('HINCRBY', UKEY, prefix .. 'ct', ct)
  elseif result == 'lost' then
    redis.call('HINCRBY', UKEY, prefix .. 'lost', 1)
  end
  if ms then redis.call('HINCRBYFLOAT', UKEY, prefix .. 'ms', ms) end
end

local function lease_member(id, lease_id, model) return id .. '|' .. lease_id .. '|' .. model end
local function instance_of(lease_id) return string.match(lease_id, '^(.+)/[^/]*$') end

-- Drop a lease nobody will settle (expired, or left by a dead run of this instance). It is counted as a request
-- (upstream most likely served and charged it) and its reserved quota stays spent. Returns 1 if it was live.
local function drop(member)
  if redis.call('ZREM', LEASES, member) == 0 then return 0 end
  local id, lease_id, model = string.match(member, '^([^|]*)|([^|]*)|(.*)$')
  if not id then return 0 end
  local iid = instance_of(lease_id)
  if iid then redis.call('SREM', instk(iid), member) end
  redis.call('ZREM', A .. id .. ':leases', lease_id)
  local exists = redis.call('EXISTS', A .. id) == 1
  if UTTL > 0 then
    if model ~= '' then count_usage('m:' .. model .. ':', 'lost') end
    if exists then count_usage('a:' .. id .. ':', 'lost') end
    redis.call('EXPIRE', UKEY, UTTL)
  end
  if exists then
    redis.call('HINCRBY', A .. id, 'requests', 1)
    redis.call('HINCRBY', A .. id, 'lost', 1)
  end
  sync(id)
  return 1
end

-- Time-driven changes, applied by the leases themselves (no background task), a bounded batch at a time:
-- expired leases, ended cooldowns, and in this mode: reset windows and quota turning stale.
local function sweep(mode)
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', LEASES, '-inf', NOW, 'LIMIT', 0, SWEEP)) do drop(member) end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', COOL, '-inf', NOW, 'LIMIT', 0, SWEEP)) do
    if redis.call('HGET', A .. id, 'state') == 'cooling' then
      redis.call('HSET', A .. id, 'state', 'active', 'reason', '', 'until', '')
    end
    sync(id)
  end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', exk(mode), '-inf', NOW, 'LIMIT', 0, SWEEP)) do sync(id) end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', frk(mode), '-inf', NOW - STALE, 'LIMIT', 0, SWEEP)) do
    sync(id)
  end
end
