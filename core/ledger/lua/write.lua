-- A request's ledger on its own (the request ended without settling a chat lease): ARGV from 1, see apply.lua.
apply_ledger(1)
return 1
