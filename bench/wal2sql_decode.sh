#!/bin/sh
# bench/wal2sql_decode.sh
#
# Server-side decoding cost of wal2sql against test_decoding, same backlog,
# same run: 1M-row INSERT, 200k UPDATEs, 100k DELETEs and pgbench traffic are
# decoded with pg_logical_slot_peek_binary_changes (count only) through a
# slot of each plugin; then the replay time of wal2sql's output with
# "psql -1 -f", without and with INSERT batching: of all changes of table
# "big", and of the INSERT-heavy part alone (the statements of the 1M-row
# INSERT, target >= 4x).  Prints times and ratios.
#
# Needs wal2sql installed (make -C wal2sql install).  Not a timed test.
# Environment: PG_CONFIG or PG_VERSION (scripts/lib/cluster.sh), ROWS (default 1000000), BATCH (default 1000).

set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/lib/cluster.sh"
ROWS=${ROWS:-1000000}
BATCH=${BATCH:-1000}

cluster_create wal2sql-bench
tmp=$cluster_dir
trap cluster_remove EXIT INT TERM
cluster_start "shared_preload_libraries = 'wal2sql'" "max_wal_size = 4GB" "fsync = off" "synchronous_commit = off"

now() { python3 -c 'import time; print(time.time())'; }

"$bindir/createdb" src
"$bindir/pgbench" -q -i -s 2 src >/dev/null 2>&1
psql -d src -c "CREATE EXTENSION wal2sql" \
	-c "CREATE TABLE big (id int PRIMARY KEY, a text, b float8, c timestamptz)"
psql -d src -At -c "SELECT 'slots', pg_create_logical_replication_slot('w', 'wal2sql'), pg_create_logical_replication_slot('t', 'test_decoding')" >/dev/null

echo "workload: $ROWS inserts, $((ROWS / 5)) updates, $((ROWS / 10)) deletes, pgbench"
psql -d src -c "INSERT INTO big SELECT g, md5(g::text), g / 7.0, now() FROM generate_series(1, $ROWS) g"
psql -d src -c "UPDATE big SET a = 'u' WHERE id % 5 = 0"
psql -d src -c "DELETE FROM big WHERE id % 10 = 1"
"$bindir/pgbench" -n -c 2 -t 2000 src >/dev/null 2>&1

timeit() {
	t0=$(now)
	n=$(psql -d src -At -c "$1")
	t1=$(now)
	python3 -c "print('%.3f %s' % ($t1 - $t0, '$n'))"
}
set -- $(timeit "SELECT count(*) FROM pg_logical_slot_peek_binary_changes('t', NULL, NULL)")
td=$1; tdn=$2
set -- $(timeit "SELECT count(*) FROM pg_logical_slot_peek_binary_changes('w', NULL, NULL)")
w2=$1; w2n=$2
set -- $(timeit "SELECT count(*) FROM pg_logical_slot_peek_binary_changes('w', NULL, NULL, 'batch-inserts', '$BATCH')")
w2b=$1; w2bn=$2
echo "test_decoding:          ${td}s ($tdn messages)"
echo "wal2sql:                ${w2}s ($w2n messages)"
echo "wal2sql batch=$BATCH:    ${w2b}s ($w2bn messages)"
python3 -c "print('decode ratio wal2sql/test_decoding: %.2f (target <= 1.3)' % ($w2 / $td))"

# replay: psql -1 -f of the output into a copy holding the schema only
psql -d src -At -c "SELECT data FROM pg_logical_slot_peek_changes('w', NULL, NULL)" >"$tmp/plain.sql"
psql -d src -At -c "SELECT data FROM pg_logical_slot_peek_changes('w', NULL, NULL, 'batch-inserts', '$BATCH')" >"$tmp/batched.sql"
replay() {
	"$bindir/dropdb" --if-exists dst 2>/dev/null
	"$bindir/createdb" dst
	"$bindir/pgbench" -q -i -s 2 dst >/dev/null 2>&1
	psql -d dst -c "TRUNCATE pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history" \
		-c "CREATE TABLE big (id int PRIMARY KEY, a text, b float8, c timestamptz)"
	t0=$(now)
	PGOPTIONS="-c session_replication_role=replica -c synchronous_commit=off" \
		psql -d dst -1 -f "$1" >/dev/null
	t1=$(now)
	python3 -c "print('%.3f' % ($t1 - $t0))"
}
# the pgbench data was loaded before the slots existed: replay on an empty
# copy of pgbench's tables would fail on its UPDATEs, so replay only "big"
# (BEGIN/COMMIT left out: "psql -1" makes it one transaction)
grep -v -e 'pgbench_' -e '^BEGIN;$' -e '^COMMIT;$' "$tmp/plain.sql" >"$tmp/plain_big.sql"
grep -v -e 'pgbench_' -e '^BEGIN;$' -e '^COMMIT;$' "$tmp/batched.sql" >"$tmp/batched_big.sql"
rp=$(replay "$tmp/plain_big.sql")
rb=$(replay "$tmp/batched_big.sql")
echo "replay psql -1 -f, table big, all changes: plain ${rp}s, batched ${rb}s"
python3 -c "print('  speed-up with batch-inserts=$BATCH: %.2fx' % ($rp / $rb))"

# the INSERT-heavy part alone: the statements of the $ROWS-row INSERT
grep '^INSERT INTO public.big ' "$tmp/plain.sql" >"$tmp/plain_ins.sql"
grep '^INSERT INTO public.big ' "$tmp/batched.sql" >"$tmp/batched_ins.sql"
echo "  INSERT statements: plain $(wc -l <"$tmp/plain_ins.sql"), batched $(wc -l <"$tmp/batched_ins.sql")"
rpi=$(replay "$tmp/plain_ins.sql")
rbi=$(replay "$tmp/batched_ins.sql")
echo "replay psql -1 -f, the $ROWS-row INSERT only: plain ${rpi}s, batched ${rbi}s"
python3 -c "print('replay speed-up with batch-inserts=$BATCH (INSERTs): %.2fx (target >= 4)' % ($rpi / $rbi))"
