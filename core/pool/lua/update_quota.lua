-- Store refreshed quota windows for one account and its detected tier.
-- KEYS[1] acct:<id>
-- ARGV: 1 now, 2 tier ('' = not detected, keep), 3 window count, 4.. windows (see apply_windows)
-- Reply: 1, or 0 when the account does not exist.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'tier', ARGV[2]) end
apply_windows(KEYS[1], 4, tonumber(ARGV[3]), tonumber(ARGV[1]))
return 1
