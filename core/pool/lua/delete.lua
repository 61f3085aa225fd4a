-- Remove accounts with their leases and index entries.
-- KEYS[1] pool:ids   ARGV: 1..8 context (common.lua), 9.. ids
-- Reply: number of accounts deleted. (Their entries in pool:leases expire by themselves and count nothing.)
local deleted = 0
for i = 9, #ARGV do
  local akey = A .. ARGV[i]
  deleted = deleted + redis.call('DEL', akey)
  redis.call('DEL', akey .. ':leases')
  redis.call('ZREM', KEYS[1], ARGV[i])
  forget(ARGV[i])
end
return deleted
