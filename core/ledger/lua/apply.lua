-- Apply a request's ledger writes (core/ledger/writer.py packs them) from one argument: ops separated by \30, the
-- fields of an op by \31 (one argument, not a hundred: the client packs each argument separately, and that was
-- most of the ledger's cost).
--   H n key1 ttl1 .. keyn ttln f1 v1 ...   HINCRBY each field in each hash (hourly and daily counters), EXPIRE
--   I key amount ttl                       INCRBY (a key's token quota), EXPIRE ttl (>0)
--   Z key member                           ZREM (free a key's concurrency slot)
--   X key maxlen f1 v1 ...                 XADD key MAXLEN ~ maxlen * fields (the request log)
-- Appended to scripts that settle a request (pool settle) and run alone by write.lua. Keys are derived by the
-- caller under the store prefix (single-node Redis, like the pool).
local function ledger_split(text, sep)
  local out, start = {}, 1
  while true do
    local at = string.find(text, sep, start, true)
    if not at then out[#out + 1] = string.sub(text, start) return out end
    out[#out + 1] = string.sub(text, start, at - 1)
    start = at + 1
  end
end

local function apply_ledger(packed)
  if packed == nil or packed == '' then return end
  for _, op in ipairs(ledger_split(packed, '\30')) do
    local f = ledger_split(op, '\31')
    local kind = f[1]
    if kind == 'H' then
      local n = tonumber(f[2])
      local first = 3 + 2 * n
      for k = 0, n - 1 do
        local key, ttl = f[3 + 2 * k], tonumber(f[4 + 2 * k])
        for j = first, #f - 1, 2 do redis.call('HINCRBY', key, f[j], f[j + 1]) end
        if ttl > 0 then redis.call('EXPIRE', key, ttl) end
      end
    elseif kind == 'I' then
      redis.call('INCRBY', f[2], f[3])
      if tonumber(f[4]) > 0 then redis.call('EXPIRE', f[2], tonumber(f[4])) end
    elseif kind == 'Z' then
      redis.call('ZREM', f[2], f[3])
    elseif kind == 'X' then
      local command = {'XADD', f[2], 'MAXLEN', '~', f[3], '*'}
      for j = 4, #f do command[#command + 1] = f[j] end
      redis.call(unpack(command))
    else
      return redis.error_reply('ledger: unknown op ' .. tostring(kind))
    end
  end
end
