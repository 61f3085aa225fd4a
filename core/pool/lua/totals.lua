-- Sums for the pool summary over a batch of accounts, reading only the fields it needs (not whole hashes).
-- KEYS[1] pool:ids
-- ARGV: 1..8 context (common.lua), 9 cursor (import sequence, exclusive), 10 batch size
-- Reply: {next cursor ('0' = done), name, value, ...} with names tier:<t>, status:<s>, rem:<kind>,
--        unknown:<kind>, in_flight, plaintext.
local batch = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[9], '+inf', 'WITHSCORES', 'LIMIT', 0,
  tonumber(ARGV[10]))
local sums = {}
local function add(name, n) sums[name] = (sums[name] or 0) + n end
local want = {'tier', 'enabled', 'state', 'until', 'enc'}
for _, m in ipairs(MODES) do want[#want + 1] = 'q:' .. m .. ':rem' end
local last = '0'
for i = 1, #batch, 2 do
  local id = batch[i]
  last = batch[i + 1]
  local f = redis.call('HMGET', A .. id, unpack(want))
  if f[2] then
    add('tier:' .. (RANK[f[1]] and f[1] or 'unknown'), 1)
    local status = 'active'
    if f[2] == '0' then status = 'disabled'
    elseif f[3] == 'invalid' then status = 'invalid'
    elseif f[3] == 'cooling' and num(f[4], 0) > NOW then status = 'cooling' end
    add('status:' .. status, 1)
    if f[5] ~= 'aesgcm' then add('plaintext', 1) end
    add('in_flight', redis.call('ZCOUNT', A .. id .. ':leases', '(' .. fmt(NOW), '+inf'))
    if status ~= 'disabled' and status ~= 'invalid' then
      for j, m in ipairs(MODES) do
        local rem = num(f[5 + j])
        if rem == nil then add('unknown:' .. m, 1) else add('rem:' .. m, rem) end
      end
    end
  end
end
if #batch < tonumber(ARGV[10]) * 2 then last = '0' end
local out = {last}
for k, v in pairs(sums) do
  out[#out + 1] = k
  out[#out + 1] = fmt(v)
end
return out
