-- A request's ledger on its own (the request ended without settling a chat lease): ARGV[1], see apply.lua.
-- ARGV[2] (optional): a marker key set once per record, so a write retried after a timeout (the script may have
-- run already) never counts the request twice; ARGV[3] its TTL.
if ARGV[2] and ARGV[2] ~= '' then
  if not redis.call('SET', ARGV[2], '1', 'NX', 'EX', tonumber(ARGV[3])) then return 0 end
end
apply_ledger(ARGV[1])
return 1
