-- Free every lease a previous run of this instance left behind (it was killed, or crashed, before settling).
-- ARGV: 1..8 context (common.lua), 9 instance id
-- Reply: number of leases dropped. Each counts as a request (upstream probably served it); its quota stays spent.
local key = instk(ARGV[9])
local dropped = 0
for _, member in ipairs(redis.call('SMEMBERS', key)) do dropped = dropped + drop(member) end
redis.call('DEL', key)
return dropped
