-- Remove accounts with their leases.
-- KEYS[1] pool:ids   ARGV: 1 acct: prefix, 2.. ids
-- Reply: number of accounts deleted.
local deleted = 0
for i = 2, #ARGV do
  local akey = ARGV[1] .. ARGV[i]
  deleted = deleted + redis.call('DEL', akey)
  redis.call('DEL', akey .. ':leases')
  redis.call('ZREM', KEYS[1], ARGV[i])
end
return deleted
