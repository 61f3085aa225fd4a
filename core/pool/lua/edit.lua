-- Set fields on existing accounts only (admin edits never resurrect a deleted account).
-- ARGV: 1 acct: prefix, 2 id count N, 3..2+N ids, then field, value pairs
-- Reply: number of accounts edited.
local prefix, n = ARGV[1], tonumber(ARGV[2])
local pairs_ = {}
for i = 3 + n, #ARGV do pairs_[#pairs_ + 1] = ARGV[i] end
local edited = 0
for i = 3, 2 + n do
  local akey = prefix .. ARGV[i]
  if redis.call('EXISTS', akey) == 1 then
    redis.call('HSET', akey, unpack(pairs_))
    edited = edited + 1
  end
end
return edited
