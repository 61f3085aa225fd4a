-- Apply a request's ledger writes (core/ledger/writer.py builds them) from ARGV[first]: the count, then ops.
--   H key ttl n f1 v1 ... fn vn       HINCRBY each field (counters of stats and key usage), then EXPIRE ttl (>0)
--   I key amount ttl                  INCRBY (a key's token quota), EXPIRE ttl (>0)
--   Z key member                      ZREM (free a key's concurrency slot)
--   X key maxlen n f1 v1 ... fn vn    XADD key MAXLEN ~ maxlen * fields (the request log)
-- Appended to scripts that settle a request (pool settle) and run alone by ledger_write.lua. Keys are derived by
-- the caller under the store prefix (single-node Redis, like the pool).
local function apply_ledger(first)
  local i = first
  local count = tonumber(ARGV[i]) or 0
  i = i + 1
  for _ = 1, count do
    local op, key = ARGV[i], ARGV[i + 1]
    if op == 'H' then
      local ttl, n = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
      for j = 0, n - 1 do redis.call('HINCRBY', key, ARGV[i + 4 + 2 * j], ARGV[i + 5 + 2 * j]) end
      if ttl > 0 then redis.call('EXPIRE', key, ttl) end
      i = i + 4 + 2 * n
    elseif op == 'I' then
      redis.call('INCRBY', key, ARGV[i + 2])
      local ttl = tonumber(ARGV[i + 3])
      if ttl > 0 then redis.call('EXPIRE', key, ttl) end
      i = i + 4
    elseif op == 'Z' then
      redis.call('ZREM', key, ARGV[i + 2])
      i = i + 3
    elseif op == 'X' then
      local n = tonumber(ARGV[i + 3])
      local command = {'XADD', key, 'MAXLEN', '~', ARGV[i + 2], '*'}
      for j = 0, 2 * n - 1 do command[#command + 1] = ARGV[i + 4 + j] end
      redis.call(unpack(command))
      i = i + 4 + 2 * n
    else
      return redis.error_reply('ledger: unknown op ' .. tostring(op))
    end
  end
  return i
end
