-- A request's ledger on its own (the request ended without settling a chat lease): ARGV[1], see apply.lua.
apply_ledger(ARGV[1])
return 1
