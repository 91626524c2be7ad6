#!/bin/sh
# bench/restore_updates.sh
#
# Replay speed of an UPDATE-heavy stream, sysbench-like: a table of ROWS rows
# (id int primary key, k int, c char(120), pad char(60)) and two clients
# running single-statement transactions "UPDATE sbtest SET k = k + 1 WHERE
# id = <random>" (and one in four "UPDATE sbtest SET c = <random text>
# WHERE id = <random>"), streamed through the real pg_scribe --init and
# --start (wal2sql with batch-inserts=1000), sealed with --rotate-diff, then
#
#   - pg_scribe --restore --create            (its "Applied ..." diff phase)
#   - psql -1 -f diff-1 ...                   (into a database restored from
#   - psql -f diff-1 ...                       the same base and globals)
#
# same run, same server, every replay with session_replication_role =
# replica, wal2sql.capture = off and synchronous_commit = off.  Checks that
# the three restored databases and the source have the same per-table row
# digests, then prints the times, the changes per second (row changes of the
# workload, from the source's pg_stat_user_tables) and the ratios.
#
# Needs wal2sql installed (make -C wal2sql install).  Not a timed test.
# Environment: PG_CONFIG or PG_VERSION (scripts/lib/cluster.sh), ROWS (rows
# of sbtest, 100000), TXNS (UPDATE transactions per client, 2 clients,
# 100000).  BEFORE_BIN=<a pg_scribe binary> also times that build's restore in
# the same run (before/after figures).  KEEP=1 leaves the server and the files
# in place.

set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/lib/cluster.sh"
ROWS=${ROWS:-100000}
TXNS=${TXNS:-100000}
export PG_BINDIR="$bindir"

cargo build --release -q --manifest-path "$here/Cargo.toml"
scribe="$here/target/release/pg_scribe"

cluster_create restore-updates
tmp=$cluster_dir
streamer=
cleanup() {
	[ -n "$streamer" ] && kill "$streamer" 2>/dev/null || true
	if [ "${KEEP:-0}" = 1 ]; then
		echo "kept: $tmp (server on port $cluster_port; stop it with pg_ctl -D $tmp/data stop)"
		return
	fi
	cluster_remove
}
trap cleanup EXIT INT TERM

cluster_start "shared_preload_libraries = 'wal2sql'" "max_wal_size = 4GB" "fsync = off" \
	"logical_decoding_work_mem = 256MB"

now() { python3 -c 'import time; print(time.time())'; }
# Row changes so far on the source's own tables (flushed by the sessions that ended).
changes() {
	psql -d src -At -c "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables WHERE schemaname <> 'wal2sql'"
}

"$bindir/createdb" src
psql -d src -c "CREATE EXTENSION wal2sql"
psql -d src -c "CREATE TABLE sbtest (id int PRIMARY KEY, k int NOT NULL DEFAULT 0, c char(120) NOT NULL DEFAULT '', pad char(60) NOT NULL DEFAULT '')" \
	-c "CREATE INDEX ON sbtest (k)" \
	-c "INSERT INTO sbtest SELECT g, (g * 7919) % $ROWS, md5(g::text) || md5((g + 1)::text), md5((-g)::text) FROM generate_series(1, $ROWS) g" \
	-c "CREATE TABLE marker (label text PRIMARY KEY)"
"$scribe" --init -d src --backup-dir "$tmp/backups" --slot s >/dev/null 2>&1
chain=$(ls -d "$tmp"/backups/chain-*)
"$scribe" --start -d src --backup-dir "$tmp/backups" 2>"$tmp/streamer.log" &
streamer=$!
changes0=$(changes)

cat >"$tmp/update.sql" <<SQL
\\set id random(1, $ROWS)
UPDATE sbtest SET k = k + 1 WHERE id = :id;
SQL
cat >"$tmp/update_c.sql" <<SQL
\\set id random(1, $ROWS)
UPDATE sbtest SET c = md5(random()::text) || md5(random()::text) WHERE id = :id;
SQL
echo "workload: sbtest of $ROWS rows; 2 clients x $TXNS single-UPDATE transactions (3 in 4 index column, 1 in 4 text column)"
"$bindir/pgbench" -n -c 2 -t "$TXNS" -f "$tmp/update.sql@3" -f "$tmp/update_c.sql@1" src >/dev/null 2>&1
psql -d src -c "INSERT INTO marker VALUES ('end')"
n=0
until grep -q "'end'" "$chain/active.sql" 2>/dev/null; do
	n=$((n + 1))
	[ "$n" -lt 1200 ] || { echo "the streamer did not catch up"; cat "$tmp/streamer.log"; exit 1; }
	sleep 0.5
done
"$scribe" --rotate-diff --backup-dir "$tmp/backups" >/dev/null 2>&1
kill -TERM "$streamer"
wait "$streamer" || true
streamer=
nchanges=$(($(changes) - changes0))
set -- "$chain"/diff-*.sql
ndiffs=$#
size=$(cat "$@" | wc -c)
txns=$(cat "$@" | grep -c '^-- wal2sql begin ')
stmts=$(cat "$@" | grep -vc '^-- wal2sql ')
echo "diffs: $ndiffs files, $size bytes, $txns transactions, $stmts statement lines"

digest_sql="CREATE FUNCTION pg_temp.rows_md5(r regclass) RETURNS text LANGUAGE plpgsql AS \$\$
  DECLARE h text;
  BEGIN
    EXECUTE format('SELECT count(*) || '' '' || md5(coalesce(string_agg(t::text, ''|'' ORDER BY t::text), '''')) FROM ONLY %s t', r) INTO h;
    RETURN h;
  END \$\$;
SELECT c.oid::regclass::text || ' ' || pg_temp.rows_md5(c.oid)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'wal2sql')
   AND n.nspname NOT LIKE 'pg\\_%'
 ORDER BY 1"
digest() { psql -d "$1" -At -c "$digest_sql"; }
digest src >"$tmp/d_src"

# pg_scribe --restore: the "Applied" line carries the time of the diff phase alone.
"$scribe" --restore --backup-dir "$tmp/backups" -d r_scribe --create >"$tmp/restore.log" 2>&1 || {
	cat "$tmp/restore.log"
	exit 1
}
# The time of the diff phase in a restore's log (its "Applied ..." line).
apply_time() {
	python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"Applied .* in ([0-9hms. ]+)\)", text)
if not m:
    sys.exit(1)
total = 0.0
for num, unit in re.findall(r"([0-9.]+)([hms])", m.group(1)):
    total += float(num) * {"h": 3600, "m": 60, "s": 1}[unit]
print(total)
PY
}
engine=$(apply_time "$tmp/restore.log") || { cat "$tmp/restore.log"; echo "could not read the apply time"; exit 1; }
before=0
if [ -n "${BEFORE_BIN:-}" ]; then
	"$BEFORE_BIN" --restore --backup-dir "$tmp/backups" -d r_before --create >"$tmp/before.log" 2>&1 || {
		cat "$tmp/before.log"
		exit 1
	}
	before=$(apply_time "$tmp/before.log") || { cat "$tmp/before.log"; exit 1; }
fi

# psql of the same diffs onto the same base.
prepare_target() {
	"$bindir/createdb" -T template0 "$1"
	psql -d "$1" -f "$chain/globals.sql" >/dev/null 2>&1 || true
	PGOPTIONS="-c wal2sql.capture=off" psql -d "$1" -1 -f "$chain/base.sql" >/dev/null
}
files=""
for f in "$@"; do files="$files -f $f"; done
replay_opts="-c session_replication_role=replica -c wal2sql.capture=off -c synchronous_commit=off"
prepare_target r_psql1
t0=$(now)
# shellcheck disable=SC2086
PGOPTIONS="$replay_opts" psql -d r_psql1 -1 $files >/dev/null 2>"$tmp/psql1.err"
t1=$(now)
prepare_target r_psqlf
t2=$(now)
# shellcheck disable=SC2086
PGOPTIONS="$replay_opts" psql -d r_psqlf $files >/dev/null
t3=$(now)

dbs="r_scribe r_psql1 r_psqlf"
[ -z "${BEFORE_BIN:-}" ] || dbs="$dbs r_before"
for db in $dbs; do
	digest "$db" >"$tmp/d_$db"
	cmp -s "$tmp/d_src" "$tmp/d_$db" || {
		echo "$db differs from the source:"
		diff "$tmp/d_src" "$tmp/d_$db" || true
		exit 1
	}
done
echo "row digests: source = pg_scribe --restore = psql -1 -f = psql -f ($(wc -l <"$tmp/d_src") tables)"

python3 - "$engine" "$t0" "$t1" "$t2" "$t3" "$txns" "$nchanges" "$before" <<'PY'
import sys
engine = float(sys.argv[1])
p1 = float(sys.argv[3]) - float(sys.argv[2])
pf = float(sys.argv[5]) - float(sys.argv[4])
txns, changes = int(sys.argv[6]), int(sys.argv[7])
print("row changes: %d" % changes)
rows = [("pg_scribe --restore (diff phase)", engine), ("psql -1 -f", p1), ("psql -f", pf)]
before = float(sys.argv[-1])
if before > 0:
    rows.insert(1, ("BEFORE_BIN --restore (diff phase)", before))
for name, t in rows:
    print("%-33s %7.2fs (%7.0f changes/s, %6.0f txn/s)" % (name + ":", t, changes / t, txns / t))
print("ratio psql -1 -f / pg_scribe: %.2fx (target >= 10x)" % (p1 / engine))
print("ratio psql -f    / pg_scribe: %.2fx" % (pf / engine))
if before > 0:
    print("ratio BEFORE_BIN / pg_scribe: %.2fx" % (before / engine))
PY
