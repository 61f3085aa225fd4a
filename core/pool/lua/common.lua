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

-- What sync reads: the account's state, then rem, tot, reset, at of each mode in MODES order (written out:
-- building it with a loop costs ~10 µs on every call of every script).
local FIELDS = {'tier', 'enabled', 'state', 'until', 'concurrency', 'refreshing', 'ixt', 'ixs', 'q:auto:rem',
  'q:auto:tot', 'q:auto:reset', 'q:auto:at', 'q:fast:rem', 'q:fast:tot', 'q:fast:reset', 'q:fast:at',
  'q:expert:rem', 'q:expert:tot', 'q:expert:reset', 'q:expert:at', 'q:heavy:rem', 'q:heavy:tot',
  'q:heavy:reset', 'q:heavy:at', 'q:image:rem', 'q:image:tot', 'q:image:reset', 'q:image:at',
  'q:image_pro:rem', 'q:image_pro:tot', 'q:image_pro:reset', 'q:image_pro:at', 'q:image_edit:rem',
  'q:image_edit:tot', 'q:image_edit:reset', 'q:image_edit:at', 'q:video:rem', 'q:video:tot', 'q:video:reset',
  'q:video:at', 'q:video_720p:rem', 'q:video_720p:tot', 'q:video_720p:reset', 'q:video_720p:at'}
local Q0 = #FIELDS - 4 * #MODES -- quota fields of mode i start at Q0 + 4 (i - 1) + 1

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

-- Where an account is indexed, as remembered in its hash field ixs (';' separated): first the account's state
-- ("s" serving, "d" disabled, "i" invalid, "c:<until>" cooling), then one entry per mode,
-- "<r|b|o|->:<value>:<fresh since>" = in ix (ready), ixb (busy), ex (out of quota; value = reset time), nowhere.
-- sync compares it with where the account belongs now and sends only the commands for what changed.
local function entries(text)
  local out = {}
  if text then for e in string.gmatch(text, '[^;]+') do out[#out + 1] = e end end
  return out
end

local function where_key(w, mode, tier)
  if w == 'r' then return ix(mode, tier) elseif w == 'b' then return ixb(mode, tier) elseif w == 'o' then
    return exk(mode)
  end
end

-- Put the account where its hash says it belongs. Idempotent.
-- force: ignore what ixs remembers and write every entry (reindex, or an entry found wrong).
-- only: just this mode (a lease changed that mode's quota and maybe made the account busy; its other modes
-- keep their entries: a lease there finds the account busy, and re-syncs it, or settle does).
local function sync(id, force, only)
  local akey, lkey = A .. id, A .. id .. ':leases'
  local f, base = nil, nil -- base[i]: where mode i's four quota fields start in f
  if only and not force then
    local q = 'q:' .. only .. ':'
    f = redis.call('HMGET', akey, FIELDS[1], FIELDS[2], FIELDS[3], FIELDS[4], FIELDS[5], FIELDS[6], FIELDS[7],
      FIELDS[8], q .. 'rem', q .. 'tot', q .. 'reset', q .. 'at')
    base = {}
    for i, m in ipairs(MODES) do if m == only then base[i] = 8 end end
  else
    only = nil
    f = redis.call('HMGET', akey, unpack(FIELDS))
  end
  if not f[2] then return forget(id) end -- 'enabled' is always set: the hash is gone
  local tier = RANK[f[1]] and f[1] or 'unknown'
  local old_tier = f[7]
  local was = force and {} or entries(f[8])
  local disabled = f[2] == '0'
  local invalid = not disabled and f[3] == 'invalid'
  local until_ts = num(f[4], 0)
  local cooling = not disabled and not invalid and f[3] == 'cooling' and until_ts > NOW
  local state = (disabled and 'd') or (invalid and 'i') or (cooling and ('c:' .. fmt(until_ts))) or 's'
  if old_tier ~= tier or force then
    for _, t in ipairs(TIERS) do
      if t ~= tier then
        for _, m in ipairs(MODES) do
          redis.call('ZREM', ix(m, t), id)
          redis.call('ZREM', ixb(m, t), id)
        end
        redis.call('SREM', tierk(t), id)
      end
    end
    redis.call('SADD', tierk(tier), id)
    for i = 2, #was do -- it left the old tier's ix/ixb; fr and ex do not depend on the tier
      if string.sub(was[i], 1, 1) ~= 'o' then was[i] = '-' .. string.sub(was[i], 2) end
    end
  end
  if only and (state ~= was[1] or old_tier ~= tier) then -- every mode changes: start again with all of them
    return sync(id, false, nil)
  end
  if state ~= was[1] then
    local old = was[1] or ''
    if force or (old == 'd') ~= disabled then
      if disabled then redis.call('SADD', OFF, id) else redis.call('SREM', OFF, id) end
    end
    if force or (old == 'i') ~= invalid then
      if invalid then redis.call('SADD', BAD, id) else redis.call('SREM', BAD, id) end
    end
    if cooling then redis.call('ZADD', COOL, until_ts, id)
    elseif force or string.sub(old, 1, 1) == 'c' then redis.call('ZREM', COOL, id) end
  end
  local serving = state == 's'
  local live, refreshing = 0, false
  if serving then
    live = redis.call('ZCOUNT', lkey, '(' .. fmt(NOW), '+inf')
    if f[6] and f[6] ~= '' then refreshing = num(redis.call('ZSCORE', lkey, f[6]), 0) > NOW end
  end
  -- A refresh must have the account to itself: while one is live, or any lease is, where the quota is
  -- unknown (a lease there would have to refresh), the account waits in ixb.
  local full = refreshing or live >= num(f[5], CAP)
  local now_entries = {state}
  for i, m in ipairs(MODES) do
    local old = was[i + 1] or '-::'
    if only and m ~= only then
      now_entries[i + 1] = old
    else
      local b = base and base[i] or Q0 + (i - 1) * 4
      local rem, tot, reset, at = num(f[b + 1]), num(f[b + 2]), num(f[b + 3]), num(f[b + 4])
      local region, v = judge(rem, tot, reset, at)
      local where, since = '-', ''
      if serving and region == 'out' then
        where = 'o'
      elseif serving then
        where = (full or (live > 0 and rem == nil)) and 'b' or 'r'
        if region == 'fresh' then
          since = fmt(at)
          v = math.min(math.max(v, 0), UNKNOWN_V - 1)
        else
          v = -2e12 + math.min(math.max(v, 0), UNKNOWN_V)
        end
      end
      local value = fmt(v)
      local entry = where .. ':' .. value .. ':' .. since
      now_entries[i + 1] = entry
      if entry ~= old or force then
        local ow, ov, osince = string.match(old, '^(.):([^:]*):(.*)$')
        if force then
          redis.call('ZREM', ix(m, tier), id)
          redis.call('ZREM', ixb(m, tier), id)
          redis.call('ZREM', exk(m), id)
          redis.call('ZREM', frk(m), id)
          ow, ov, osince = '-', '', ''
        end
        if ow ~= where and ow ~= '-' then redis.call('ZREM', where_key(ow, m, tier), id) end
        if where ~= '-' and (ow ~= where or ov ~= value) then
          local score = v
          if where ~= 'o' then score = v + (rand() % 500) / 1000 end -- jitter: random order among equals
          redis.call('ZADD', where_key(where, m, tier), score, id)
        end
        if since ~= osince then
          if since ~= '' then redis.call('ZADD', frk(m), at, id) else redis.call('ZREM', frk(m), id) end
        end
      end
    end
  end
  local text = table.concat(now_entries, ';')
  if text ~= f[8] or old_tier ~= tier then redis.call('HSET', akey, 'ixs', text, 'ixt', tier) end
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
