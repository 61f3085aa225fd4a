-- One page of accounts for the admin views (every hash field except the token, plus the live lease count),
-- in import order after a cursor, filtered, looking at no more than a scan budget of accounts.
-- KEYS[1] pool:ids
-- ARGV: 1..8 context (common.lua), 9 cursor (import sequence, exclusive), 10 limit, 11 scan budget,
--       12 tier ('' = any), 13 status ('' = any: active|cooling|invalid|disabled), 14 tag as JSON ('' = any),
--       15 search text, lower case ('' = any): a substring of the id, masked token, note or tags,
--       16 chat quota left ('' = any | some | none | unknown), 17 the chat modes it sums, space-separated,
--       18 the search text as JSON escapes it ('' = the same; tags are stored as JSON text)
-- Reply: {next cursor ('0' = no more), total matching ('' = unknown: a tag, search or quota filter, or two),
--        rows...}
--        rows: {id, in_flight, {field, value, ...}}
local cursor, limit, budget = ARGV[9], tonumber(ARGV[10]), tonumber(ARGV[11])
local want_tier, want_status, want_tag, want_text = ARGV[12], ARGV[13], ARGV[14], ARGV[15] or ''
local want_quota, modes, want_escaped = ARGV[16] or '', ARGV[17] or '', ARGV[18] or ''
local batch = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. cursor, '+inf', 'WITHSCORES', 'LIMIT', 0, budget)

local function status(f)
  if f.enabled == '0' then return 'disabled' end
  if f.state == 'invalid' then return 'invalid' end
  if f.state == 'cooling' and num(f['until'], 0) > NOW then return 'cooling' end
  return 'active'
end

-- 'some' / 'none' (known, summed over the chat modes) or 'unknown' (no mode's quota known yet)
local function quota_left(f)
  local known, sum = false, 0
  for mode in string.gmatch(modes, '%S+') do
    local v = tonumber(f['q:' .. mode .. ':rem'])
    if v then known, sum = true, sum + v end
  end
  if not known then return 'unknown' end
  return sum > 0 and 'some' or 'none'
end

local function matches_text(id, f)
  local hay = string.lower(id .. ' ' .. (f.masked or '') .. ' ' .. (f.note or '') .. ' ' .. (f.tags or ''))
  return string.find(hay, want_text, 1, true) or (want_escaped ~= '' and string.find(hay, want_escaped, 1, true))
end

local out = {'0', ''}
local last, found = cursor, 0
for i = 1, #batch, 2 do
  if found >= limit then break end
  local id = batch[i]
  last = batch[i + 1]
  local all = redis.call('HGETALL', A .. id)
  if #all > 0 then
    local f, fields = {}, {}
    for j = 1, #all, 2 do
      f[all[j]] = all[j + 1]
      if all[j] ~= 'token' then
        fields[#fields + 1] = all[j]
        fields[#fields + 1] = all[j + 1]
      end
    end
    if (want_tier == '' or (f.tier or 'unknown') == want_tier) and (want_status == '' or status(f) == want_status)
        and (want_tag == '' or string.find(f.tags or '', want_tag, 1, true))
        and (want_text == '' or matches_text(id, f))
        and (want_quota == '' or quota_left(f) == want_quota) then
      found = found + 1
      local in_flight = redis.call('ZCOUNT', A .. id .. ':leases', '(' .. fmt(NOW), '+inf')
      out[#out + 1] = {id, in_flight, fields}
    end
  end
end
-- More behind: we stopped at the limit before the end of what we read, or read a full budget.
if (found >= limit and last ~= batch[#batch]) or #batch >= budget * 2 then out[1] = last end

local total = nil
if want_tag == '' and want_text == '' and want_quota == '' then
  local all = redis.call('ZCARD', KEYS[1])
  local cooling = redis.call('ZCOUNT', COOL, '(' .. fmt(NOW), '+inf')
  local counts = {disabled = redis.call('SCARD', OFF), invalid = redis.call('SCARD', BAD), cooling = cooling}
  counts.active = all - counts.disabled - counts.invalid - cooling
  if want_tier == '' and want_status == '' then total = all
  elseif want_tier == '' then total = counts[want_status]
  elseif want_status == '' then total = redis.call('SCARD', tierk(want_tier)) end
end
if total then out[2] = fmt(total) end
return out
