-- Shared setup of the wal2sql regression suite (runs first).
-- changes(slot, options...) returns the slot's output with xids, LSNs and
-- commit times masked (and the session's TimeZone, whose name for pg_regress's
-- PST8PDT varies with tzdata); check_headers(slot) validates them instead.
CREATE FUNCTION changes(slot text, VARIADIC options text[] DEFAULT '{}')
RETURNS SETOF text LANGUAGE sql AS $$
  SELECT regexp_replace(regexp_replace(regexp_replace(regexp_replace(data,
    '^-- wal2sql begin xid=\d+ commit_lsn=[0-9A-F]+/[0-9A-F]+ end_lsn=[0-9A-F]+/[0-9A-F]+ commit_time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z format=2$',
    '-- wal2sql begin xid=X commit_lsn=X end_lsn=X commit_time=T format=2'),
    '^-- wal2sql commit end_lsn=[0-9A-F]+/[0-9A-F]+$', '-- wal2sql commit end_lsn=X'),
    'transaction \d+', 'transaction X', 'g'),
    'SET LOCAL TimeZone = ''[^'']*''', 'SET LOCAL TimeZone = ''<session>''', 'g')
  FROM pg_logical_slot_get_changes(slot, NULL, NULL, VARIADIC options)
$$;
CREATE ROLE w2s_user LOGIN;
SELECT extname, extnamespace::regnamespace FROM pg_extension WHERE extname = 'wal2sql';
SELECT evtname, evtevent, evtenabled FROM pg_event_trigger ORDER BY evtname;
CREATE SCHEMA w2s AUTHORIZATION w2s_user;
-- The xml type needs a server built with libxml; without one, the tests use
-- text in its place (same literals, same output where text has "=" and xml
-- has not: expected/identity_1.out) and test/run-regress.sh says so.
CREATE FUNCTION xml_type() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM '<a/>'::xml;
  RETURN 'xml';
EXCEPTION WHEN feature_not_supported THEN
  RETURN 'text';
END $$;
-- Multiranges came in 14; before, the tests use text in their place (same
-- literals, same output).
CREATE FUNCTION multirange_type() RETURNS text LANGUAGE sql AS $$
  SELECT CASE WHEN to_regtype('int4multirange') IS NULL THEN 'text' ELSE 'int4multirange' END
$$;
-- Numeric infinities came in 14; before, the tests use text in their place
-- (same literals, same output).
CREATE FUNCTION numeric_type() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 'Infinity'::numeric;
  RETURN 'numeric';
EXCEPTION WHEN invalid_text_representation THEN
  RETURN 'text';
END $$;
