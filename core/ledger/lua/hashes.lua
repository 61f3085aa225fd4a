-- Several hashes in one command (the stats of a chart). ARGV: hash keys. Reply: one flat field list per key.
local out = {}
for i = 1, #ARGV do out[i] = redis.call('HGETALL', ARGV[i]) end
return out
