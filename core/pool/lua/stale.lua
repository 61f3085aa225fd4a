-- Accounts whose quota needs a refresh (never refreshed, or older than the stale age), in import order.
-- KEYS[1] pool:ids
-- ARGV: 1 acct: prefix, 2 now, 3 stale after, 4 cursor (import sequence, exclusive), 5 limit, 6 scan budget
-- Reply: {next cursor ('0' = scan complete), id, id, ...}; never looks at more than the scan budget.
local prefix, now, stale_after = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local cursor, limit, budget = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local batch = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. cursor, '+inf', 'WITHSCORES', 'LIMIT', 0, budget)
local out = {'0'}
local last = cursor
for i = 1, #batch, 2 do
  local id = batch[i]
  last = batch[i + 1]
  local f = redis.call('HMGET', prefix .. id, 'enabled', 'state', 'q_at')
  local at = num(f[3])
  if f[1] ~= '0' and f[2] ~= 'invalid' and (at == nil or now - at >= stale_after) then
    out[#out + 1] = id
    if #out - 1 >= limit then break end
  end
end
-- More to do when we stopped early, or read a full batch (there may be more behind it).
local stopped_early = #out - 1 >= limit and last ~= batch[#batch]
if stopped_early or #batch >= budget * 2 then out[1] = last end
return out
