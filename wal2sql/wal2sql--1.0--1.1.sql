/* wal2sql/wal2sql--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION wal2sql UPDATE TO '1.1'" to load this file. \quit

-- 1.1 (output format 2): the ddl_command_start trigger fires for every
-- command, so that the library (and its ProcessUtility hook) is loaded at
-- the start of a session's first DDL and a DDL nested in it is seen with
-- its own text.
DROP EVENT TRIGGER wal2sql_ddl_start;
CREATE EVENT TRIGGER wal2sql_ddl_start ON ddl_command_start
    EXECUTE FUNCTION @extschema@.capture_ddl();
ALTER EVENT TRIGGER wal2sql_ddl_start ENABLE ALWAYS;
