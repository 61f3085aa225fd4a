-- Extend one live lease (a long stream is still running).
-- ARGV: 1..8 context (common.lua), 9 account id, 10 lease id, 11 lease member, 12 lease ttl
-- Reply: the new expiry, or '' when the lease is gone (expired, reclaimed or settled): its slot may be taken.
local lkey = A .. ARGV[9] .. ':leases'
local ttl = tonumber(ARGV[12])
if num(redis.call('ZSCORE', lkey, ARGV[10]), 0) <= NOW then return '' end
local expires = NOW + ttl
redis.call('ZADD', lkey, expires, ARGV[10])
redis.call('EXPIRE', lkey, math.ceil(ttl) + 60)
if redis.call('ZSCORE', LEASES, ARGV[11]) then redis.call('ZADD', LEASES, expires, ARGV[11]) end
return fmt(expires)
