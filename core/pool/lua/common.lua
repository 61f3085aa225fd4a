-- Helpers prepended to every pool script (scripts.py concatenates this file with the script).
-- Times are epoch seconds (floats) sent by the caller; numbers are stored as strings.

local function num(value, default)
  if value == false or value == nil or value == '' then return default end
  local n = tonumber(value)
  if n == nil then return default end
  return n
end

-- Lua numbers in replies are truncated to integers by Redis, and tostring() may use exponents: format ourselves.
local function fmt(n)
  if n == nil then return '' end
  if n == math.floor(n) and math.abs(n) < 1e15 then return string.format('%d', n) end
  return string.format('%.3f', n)
end

-- Store quota windows given as ARGV groups of 5 (kind, remaining, total, window_seconds, resets_at) from ARGV[first].
-- Quota that is back above zero clears the reset time, which is what ends an "exhausted" cooldown.
local function apply_windows(akey, first, count, now)
  for i = 0, count - 1 do
    local base = first + i * 5
    local kind = ARGV[base]
    local q = 'q:' .. kind .. ':'
    local rem = num(ARGV[base + 1])
    local reset = ARGV[base + 4]
    if rem ~= nil and rem > 0 then reset = '' end
    redis.call('HSET', akey, q .. 'rem', ARGV[base + 1], q .. 'tot', ARGV[base + 2], q .. 'win', ARGV[base + 3],
      q .. 'reset', reset, q .. 'at', fmt(now))
  end
  if count > 0 then redis.call('HSET', akey, 'q_at', fmt(now)) end
end

