-- Store refreshed quota windows for one account and its detected tier.
-- KEYS[1] acct:<id>
-- ARGV: 1..8 context (common.lua), 9 account id, 10 tier ('' = not detected, keep), 11 window count,
--       12.. windows (see apply_windows)
-- Reply: 1, or 0 when the account does not exist.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[10] ~= '' then redis.call('HSET', KEYS[1], 'tier', ARGV[10]) end
apply_windows(KEYS[1], 12, tonumber(ARGV[11]), NOW)
sync(ARGV[9])
return 1
