-- Runs once, on the first start with an empty data directory, in $POSTGRES_DB.
CREATE EXTENSION IF NOT EXISTS wal2sql;
