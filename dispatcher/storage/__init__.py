"""Storage: the SQL schema and its migrations, engines and write transactions (SQLite's one
writer included), the hash-chained ledger and the outbox rows."""
