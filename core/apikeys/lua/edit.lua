-- Change one API key atomically. ARGV: 1 key prefix (<p>key:), 2 op, 3 id, then per op:
--   create  4 digest, 5 created at, 6.. field/value pairs       -> 1
--   patch   4.. field/value pairs ('' value = field removed)     -> 1, or 0 when the key does not exist
--   rotate  4 new digest, 5 new display prefix                  -> 1 / 0
--   delete                                                      -> 1 / 0
-- The key's hash keeps its digest ('hash') so rotate and delete can drop the old lookup entry.
local P, op, id = ARGV[1], ARGV[2], ARGV[3]
local k = P .. id
if op == 'create' then
  redis.call('SET', P .. 'h:' .. ARGV[4], id)
  redis.call('HSET', k, 'hash', ARGV[4], 'created', ARGV[5])
  for i = 6, #ARGV, 2 do redis.call('HSET', k, ARGV[i], ARGV[i + 1]) end
  redis.call('ZADD', P .. 'all', tonumber(ARGV[5]), id)
  return 1
end
if redis.call('EXISTS', k) == 0 then return 0 end
if op == 'patch' then
  for i = 4, #ARGV, 2 do
    if ARGV[i + 1] == '' then redis.call('HDEL', k, ARGV[i]) else redis.call('HSET', k, ARGV[i], ARGV[i + 1]) end
  end
elseif op == 'rotate' then
  local old = redis.call('HGET', k, 'hash')
  if old then redis.call('DEL', P .. 'h:' .. old) end
  redis.call('SET', P .. 'h:' .. ARGV[4], id)
  redis.call('HSET', k, 'hash', ARGV[4], 'prefix', ARGV[5])
elseif op == 'delete' then
  local old = redis.call('HGET', k, 'hash')
  if old then redis.call('DEL', P .. 'h:' .. old) end
  redis.call('DEL', k, k .. ':slots', k .. ':q:all')
  redis.call('ZREM', P .. 'all', id)
end
return 1
