-- Read API keys with their usage. ARGV: 1 key prefix (<p>key:), 2 stats day prefix (<p>st:d:), 3 days ("d1 d2 ..",
-- newest first: today first), 4 current period stamps "day week month", 5 mode (page | one), then
--   page: 6 offset, 7 limit, 8 name filter ('' = all; case-insensitive substring), 9 scan cap
--   one:  6 id
-- Reply: {next offset (0 = end), total, then per key: id, flat hash, quota used, usage (per day: 6 numbers)}
local P, D, mode = ARGV[1], ARGV[2], ARGV[5]
local days, stamps = {}, {}
for d in string.gmatch(ARGV[3], '%S+') do days[#days + 1] = d end
for s in string.gmatch(ARGV[4], '%S+') do stamps[#stamps + 1] = s end
local PERIOD = {day = 1, week = 2, month = 3}
local FIELDS = {'req', 'ok', 'fail', 'pt', 'ct', 'md'}

local function usage(id, ndays)
  local out = {}
  for i = 1, ndays do
    local names = {}
    for j, f in ipairs(FIELDS) do names[j] = 'k:' .. id .. ':' .. f end
    local values = redis.call('HMGET', D .. days[i], unpack(names))
    for j = 1, #FIELDS do out[#out + 1] = values[j] or '0' end
  end
  return out
end

local function one(id, ndays, reply)
  local h = redis.call('HGETALL', P .. id)
  if #h == 0 then return false end
  local fields = {}
  for i = 1, #h, 2 do fields[h[i]] = h[i + 1] end
  local used = '0'
  if fields['ql'] and fields['ql'] ~= '' then
    local index = PERIOD[fields['qp'] or '']
    used = redis.call('GET', P .. id .. ':q:' .. (index and stamps[index] or 'all')) or '0'
  end
  reply[#reply + 1] = id
  reply[#reply + 1] = h
  reply[#reply + 1] = used
  reply[#reply + 1] = usage(id, ndays)
  return true
end

if mode == 'one' then
  local reply = {0, 1}
  if not one(ARGV[6], #days, reply) then return {0, 0} end
  return reply
end

local offset, limit, filter, cap = tonumber(ARGV[6]), tonumber(ARGV[7]), string.lower(ARGV[8]), tonumber(ARGV[9])
local total = redis.call('ZCARD', P .. 'all')
local reply = {0, total}
local taken, scanned, pos = 0, 0, offset
while taken < limit and scanned < cap do
  local ids = redis.call('ZREVRANGE', P .. 'all', pos, pos + 99)
  if #ids == 0 then pos = 0 break end
  for _, id in ipairs(ids) do
    pos = pos + 1
    scanned = scanned + 1
    local name = string.lower(redis.call('HGET', P .. id, 'name') or '')
    if filter == '' or string.find(name, filter, 1, true) then
      if one(id, 1, reply) then taken = taken + 1 end
    end
    if taken >= limit or scanned >= cap then break end
  end
end
if pos >= total then pos = 0 end
reply[1] = pos
return reply
