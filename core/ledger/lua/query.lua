-- One page of the request log, newest first, filtered here so a page is one command.
-- ARGV: 1 log key, 2 cursor (an entry id: the page starts below it; '' = the newest), 3 oldest id to include
-- ('-' = any), 4 newest id to include ('+' = any), 5 page size, 6 most entries looked at, 7 key id, 8 model,
-- 9 status (a code, 'Nxx', 'ok', 'error' or ''), 10 account, 11 route substring
-- Reply: {next cursor ('' = no more), entry id, flat fields, entry id, flat fields, ...}
local log, limit, cap = ARGV[1], tonumber(ARGV[5]), tonumber(ARGV[6])
local want_key, want_model, want_status, want_account, want_route = ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local top = ARGV[2] ~= '' and ('(' .. ARGV[2]) or ARGV[4]
local bottom = ARGV[3]

local function matches(f)
  if want_key ~= '' and f.k ~= want_key then return false end
  if want_model ~= '' and f.m ~= want_model then return false end
  if want_account ~= '' and f.a ~= want_account then return false end
  if want_route ~= '' and not string.find(f.r or '', want_route, 1, true) then return false end
  if want_status ~= '' then
    local s = f.s or ''
    local ok = (f.ek or '') == '' and tonumber(s) ~= nil and tonumber(s) < 400
    if want_status == 'ok' then return ok end
    if want_status == 'error' then return not ok end
    if string.sub(want_status, 2) == 'xx' then return string.sub(s, 1, 1) == string.sub(want_status, 1, 1) end
    return s == want_status
  end
  return true
end

local reply, scanned, last, exhausted = {''}, 0, nil, false
while #reply < 1 + 2 * limit and scanned < cap do
  local n = math.min(200, cap - scanned)
  local batch = redis.call('XREVRANGE', log, top, bottom, 'COUNT', n)
  local used = 0
  for _, entry in ipairs(batch) do
    scanned, used, last = scanned + 1, used + 1, entry[1]
    local flat, f = entry[2], {}
    for i = 1, #flat, 2 do f[flat[i]] = flat[i + 1] end
    if matches(f) then
      reply[#reply + 1] = entry[1]
      reply[#reply + 1] = flat
      if #reply >= 1 + 2 * limit then break end
    end
  end
  if #batch < n and used == #batch then exhausted = true break end
  top = '(' .. last
end
reply[1] = (exhausted or last == nil) and '' or last
return reply
