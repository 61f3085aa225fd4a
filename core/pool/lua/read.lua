-- Read accounts for the admin views: every hash field except the token (unless asked), plus live lease count.
-- ARGV: 1 acct: prefix, 2 now, 3 include token (1|0), 4.. ids   (all ids from pool:ids when none are given)
-- KEYS[1] pool:ids
-- Reply: {id, in_flight, {field, value, ...}} per existing account.
local prefix, now, with_token = ARGV[1], ARGV[2], ARGV[3] == '1'
local ids = {}
for i = 4, #ARGV do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then ids = redis.call('ZRANGE', KEYS[1], 0, -1) end
local out = {}
for _, id in ipairs(ids) do
  local all = redis.call('HGETALL', prefix .. id)
  if #all > 0 then
    local fields = {}
    for i = 1, #all, 2 do
      if with_token or all[i] ~= 'token' then
        fields[#fields + 1] = all[i]
        fields[#fields + 1] = all[i + 1]
      end
    end
    local in_flight = redis.call('ZCOUNT', prefix .. id .. ':leases', '(' .. now, '+inf')
    out[#out + 1] = {id, in_flight, fields}
  end
end
return out
