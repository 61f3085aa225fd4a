-- Set fields on existing accounts only (admin edits never resurrect a deleted account), and re-index them.
-- ARGV: 1..8 context (common.lua), 9 id count N, 10..9+N ids, then field, value pairs
-- Reply: number of accounts edited.
local n = tonumber(ARGV[9])
local pairs_ = {}
for i = 10 + n, #ARGV do pairs_[#pairs_ + 1] = ARGV[i] end
local edited = 0
for i = 10, 9 + n do
  local akey = A .. ARGV[i]
  if redis.call('EXISTS', akey) == 1 then
    redis.call('HSET', akey, unpack(pairs_))
    sync(ARGV[i])
    edited = edited + 1
  end
end
return edited
