-- Add accounts that do not exist yet.
-- KEYS[1] pool:ids  KEYS[2] pool:seq
-- ARGV: 1 acct: prefix, 2 now, then groups of 6: id, stored token, enc, masked, tags (JSON), note
-- Reply: one 1 (added) or 0 (already in the pool) per group.
local prefix, now = ARGV[1], ARGV[2]
local added = {}
for i = 3, #ARGV, 6 do
  local id = ARGV[i]
  local akey = prefix .. id
  if redis.call('EXISTS', akey) == 1 then
    added[#added + 1] = 0
  else
    redis.call('HSET', akey, 'token', ARGV[i + 1], 'enc', ARGV[i + 2], 'masked', ARGV[i + 3], 'tags', ARGV[i + 4],
      'note', ARGV[i + 5], 'tier', 'unknown', 'enabled', '1', 'state', 'active', 'reason', '', 'until', '',
      'strikes', '0', 'fails', '0', 'requests', '0', 'failures', '0', 'created_at', now)
    redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[2]), id)
    added[#added + 1] = 1
  end
end
return added
