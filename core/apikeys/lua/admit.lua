-- Admit one request made with a store-managed API key: check it and count it against its limits, atomically.
-- ARGV: 1 key prefix (<p>key:), 2 secret digest (hex), 3 now, 4 scope ('' = none needed), 5 model ('' = none),
--       6 count (1 = a request that uses upstream: limits are checked and counted; 0 = only validate),
--       7 slot member, 8 slot expiry, 9 minute stamp, 10 seconds to the next minute, 11 day stamp,
--       12 seconds to the next day, 13 period stamps "day week month", 14 seconds to each period's end "d w m"
-- Reply: {verdict, id, name, retry after, limit, quota counter key, quota ttl, slot taken (1|0)}; verdict ok | unknown | disabled |
-- expired | scope | model | concurrency | rpm | rpd | quota
local P, now = ARGV[1], tonumber(ARGV[3])
local scope, model, counted = ARGV[4], ARGV[5], ARGV[6] == '1'

local id = redis.call('GET', P .. 'h:' .. ARGV[2])
if not id then return {'unknown'} end
local k = P .. id
local f = redis.call('HMGET', k, 'name', 'enabled', 'exp', 'scopes', 'models', 'rpm', 'rpd', 'conc', 'qk', 'ql', 'qp')
if not f[1] then return {'unknown'} end
local name = f[1]
local function n(v) return tonumber(v) or 0 end

if f[2] ~= '1' then return {'disabled', id, name} end
if n(f[3]) > 0 and n(f[3]) <= now then return {'expired', id, name} end
if scope ~= '' and not string.find(',' .. (f[4] or '') .. ',', ',' .. scope .. ',', 1, true) then
  return {'scope', id, name}
end
if counted and model == '' and f[5] and f[5] ~= '' then
  return {'model', id, name} -- an allow-list fails closed: a request that names no model may not use a default
end
if model ~= '' and f[5] and f[5] ~= '' then
  local allowed = false
  for pattern in string.gmatch(f[5], '[^\n]+') do
    if pattern == model then allowed = true break end
    if string.find(pattern, '*', 1, true) then
      local lua = '^' .. string.gsub(string.gsub(pattern, '[%^%$%(%)%%%.%[%]%+%-%?]', '%%%0'), '%*', '.*') .. '$'
      if string.find(model, lua) then allowed = true break end
    end
  end
  if not allowed then return {'model', id, name} end
end

-- The token-quota counter of the key's period, whatever the verdict (settle adds the tokens to it).
local qkey, qttl = '', 0
local qp = f[11] or ''
if n(f[10]) > 0 and qp ~= '' then
  local stamps, ends = {}, {}
  for s in string.gmatch(ARGV[13], '%S+') do stamps[#stamps + 1] = s end
  for s in string.gmatch(ARGV[14], '%S+') do ends[#ends + 1] = tonumber(s) end
  local index = ({day = 1, week = 2, month = 3})[qp]
  if index then
    qkey, qttl = k .. ':q:' .. stamps[index], math.floor(ends[index]) + 86400
  else -- total
    qkey, qttl = k .. ':q:all', 0
  end
end

if counted then
  local slots = k .. ':slots'
  local conc = n(f[8])
  if conc > 0 then
    redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
    if redis.call('ZCARD', slots) >= conc then return {'concurrency', id, name, '1', tostring(conc)} end
  end
  local mkey, dkey = k .. ':m:' .. ARGV[9], k .. ':d:' .. ARGV[11]
  local rpm, rpd = n(f[6]), n(f[7])
  if rpm > 0 and n(redis.call('GET', mkey)) >= rpm then return {'rpm', id, name, ARGV[10], tostring(rpm)} end
  if rpd > 0 and n(redis.call('GET', dkey)) >= rpd then return {'rpd', id, name, ARGV[12], tostring(rpd)} end
  if qkey ~= '' and n(redis.call('GET', qkey)) >= n(f[10]) then
    local wait = qttl > 0 and tostring(qttl - 86400) or ''
    return {'quota', id, name, wait, f[10]}
  end
  if rpm > 0 then redis.call('INCR', mkey) redis.call('EXPIRE', mkey, 120) end
  if rpd > 0 then redis.call('INCR', dkey) redis.call('EXPIRE', dkey, 2 * 86400) end
  if qkey ~= '' and f[9] == 'requests' then
    redis.call('INCR', qkey)
    if qttl > 0 then redis.call('EXPIRE', qkey, qttl) end
  end
  if conc > 0 then
    redis.call('ZADD', slots, tonumber(ARGV[8]), ARGV[7])
    redis.call('EXPIRE', slots, math.ceil(tonumber(ARGV[8]) - now) + 60)
  end
end
redis.call('HSET', k, 'used', ARGV[3])
if f[9] ~= 'tokens' then qkey = '' end -- only a token quota is counted at settle
return {'ok', id, name, '', '', qkey, tostring(qttl), (counted and n(f[8]) > 0) and '1' or '0'}
