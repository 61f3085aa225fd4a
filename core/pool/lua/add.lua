-- Add accounts that do not exist yet, indexed at once.
-- KEYS[1] pool:ids  KEYS[2] pool:seq
-- ARGV: 1..8 context (common.lua), then groups of 6: id, stored token, enc, masked, tags (JSON), note
-- Reply: one 1 (added) or 0 (already in the pool) per group.
-- An empty pool gets the index marker here: a pool that already has accounts without it was written by the old
-- scripts, and the first lease asks for a reindex.
if redis.call('EXISTS', X .. 'ixv') == 0 and redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('SET', X .. 'ixv', '1')
end
local added = {}
for i = 9, #ARGV, 6 do
  local id = ARGV[i]
  local akey = A .. id
  if redis.call('EXISTS', akey) == 1 then
    added[#added + 1] = 0
  else
    redis.call('HSET', akey, 'token', ARGV[i + 1], 'enc', ARGV[i + 2], 'masked', ARGV[i + 3], 'tags', ARGV[i + 4],
      'note', ARGV[i + 5], 'tier', 'unknown', 'enabled', '1', 'state', 'active', 'reason', '', 'until', '',
      'strikes', '0', 'fails', '0', 'requests', '0', 'failures', '0', 'created_at', fmt(NOW))
    redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[2]), id)
    sync(id)
    added[#added + 1] = 1
  end
end
return added
