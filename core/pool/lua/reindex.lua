-- Build the index for a batch of accounts (pools written by the old, scanning scripts; or a repair).
-- KEYS[1] pool:ids
-- ARGV: 1..8 context (common.lua), 9 cursor (import sequence, exclusive), 10 batch size, 11 migrate leases (1|0)
-- Reply: {next cursor ('0' = done), accounts indexed}
-- Leases taken by the old scripts are only in acct:<id>:leases: with ARGV[11] = '1' (while the index marker is
-- still missing, so no lease of the new scripts exists yet) they are entered in pool:leases, to expire normally.
local batch = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[9], '+inf', 'WITHSCORES', 'LIMIT', 0,
  tonumber(ARGV[10]))
local last = '0'
for i = 1, #batch, 2 do
  local id = batch[i]
  last = batch[i + 1]
  if ARGV[11] == '1' then
    local held = redis.call('ZRANGE', A .. id .. ':leases', 0, -1, 'WITHSCORES')
    for j = 1, #held, 2 do redis.call('ZADD', LEASES, held[j + 1], lease_member(id, held[j], '')) end
  end
  sync(id, true)
end
if #batch < tonumber(ARGV[10]) * 2 then last = '0' end
return {last, #batch / 2}
