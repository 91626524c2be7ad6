/* wal2sql/wal2sql--1.1.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION wal2sql" to load this file. \quit

-- The queue through which DDL statements and sequence values reach the
-- stream.  The output plugin writes each inserted row out as SQL and
-- ignores every other change of this table.  Only its owner (the
-- superuser who created the extension) may write it: keep it so, and
-- do not add indexes, triggers or rules to it.
CREATE TABLE @extschema@.ddl_queue (
    kind        text NOT NULL,  -- 'ddl', 'sql', 'rewrite', 'missing' or 'unreplayable'
    search_path text,           -- value for SET LOCAL search_path
    role_name   text,           -- role to run the statement as
    settings    text,           -- extra SET LOCAL statement, if any
    command     text NOT NULL   -- the statement, terminated by ';'
);
REVOKE ALL ON @extschema@.ddl_queue FROM PUBLIC;

-- The tables to which the capture code gave REPLICA IDENTITY FULL
-- automatically (created without a primary key, or that lost it): when
-- one of them gets a usable primary key again, it goes back to REPLICA
-- IDENTITY DEFAULT.  A table whose identity is set explicitly, or that is
-- dropped, is removed.  Maintained by the capture code (as this table's
-- owner); only its owner (the superuser who created the extension) may
-- write it, and its changes are never written to the stream.
CREATE TABLE @extschema@.auto_full (
    relid oid PRIMARY KEY       -- pg_class.oid of the table
);
REVOKE ALL ON @extschema@.auto_full FROM PUBLIC;

-- Event trigger function (C).  It cannot be called directly, and writes
-- the queue without needing any privilege on it.
CREATE FUNCTION @extschema@.capture_ddl()
RETURNS event_trigger
LANGUAGE C
AS 'MODULE_PATHNAME', 'wal2sql_capture_ddl';

-- Every command: also loads the library (and its ProcessUtility hook) at
-- the start of a session's first DDL, so that a DDL nested in it is seen
-- with its own text.
CREATE EVENT TRIGGER wal2sql_ddl_start ON ddl_command_start
    EXECUTE FUNCTION @extschema@.capture_ddl();
CREATE EVENT TRIGGER wal2sql_table_rewrite ON table_rewrite
    EXECUTE FUNCTION @extschema@.capture_ddl();
CREATE EVENT TRIGGER wal2sql_sql_drop ON sql_drop
    EXECUTE FUNCTION @extschema@.capture_ddl();
CREATE EVENT TRIGGER wal2sql_ddl_end ON ddl_command_end
    EXECUTE FUNCTION @extschema@.capture_ddl();

-- Fire also under session_replication_role = replica.
ALTER EVENT TRIGGER wal2sql_ddl_start ENABLE ALWAYS;
ALTER EVENT TRIGGER wal2sql_sql_drop ENABLE ALWAYS;
ALTER EVENT TRIGGER wal2sql_table_rewrite ENABLE ALWAYS;
ALTER EVENT TRIGGER wal2sql_ddl_end ENABLE ALWAYS;

-- Record the current value of every permanent sequence in the stream, as
-- SELECT pg_catalog.setval(...) statements of the calling transaction.
-- Also empties the queue table of rows already decoded.
CREATE FUNCTION @extschema@.snapshot_sequences()
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    seq record;
    v_last bigint;
    v_called boolean;
    n integer := 0;
BEGIN
    FOR seq IN
        SELECT format('%I.%I', s.nspname, c.relname) AS qualname
          FROM pg_class c
          JOIN pg_namespace s ON s.oid = c.relnamespace
         WHERE c.relkind = 'S' AND c.relpersistence = 'p'
         ORDER BY s.nspname, c.relname
    LOOP
        EXECUTE format('SELECT last_value, is_called FROM %s', seq.qualname)
            INTO v_last, v_called;
        INSERT INTO @extschema@.ddl_queue (kind, command)
        VALUES ('sql', format('SELECT pg_catalog.setval(%L, %s, %s);',
                              seq.qualname, v_last,
                              CASE WHEN v_called THEN 'true' ELSE 'false' END));
        n := n + 1;
    END LOOP;
    DELETE FROM @extschema@.ddl_queue;
    RETURN n;
END
$$;
REVOKE ALL ON FUNCTION @extschema@.snapshot_sequences() FROM PUBLIC;
