#!/bin/sh
# bench/restore_diffs.sh
#
# Replay speed of a chain's differentials as the real streamer writes them:
# pg_scribe --init, pg_scribe --start (wal2sql with batch-inserts=1000),
# a ~1M-change workload with --rotate-diff between its phases, then
#
#   - pg_scribe --verify                      (offline check of the chain;
#                                               compared with the whole restore)
#   - pg_scribe --restore --create            (its "Applied ..." diff phase)
#   - psql -1 -f diff-1 -f diff-2 ...         (into a database restored from
#   - psql -f diff-1 -f diff-2 ...             the same base and globals)
#
# same run, same server, every replay with session_replication_role =
# replica, wal2sql.capture = off and synchronous_commit = off.  The diffs
# carry their own BEGIN/COMMIT per transaction, so "psql -1" only adds an
# outer BEGIN (each file's first COMMIT ends it): both psql forms are given.
# Checks that the three restored databases and the source have the same
# per-table row digests, then prints the times and the ratios.
#
# Needs wal2sql installed (make -C wal2sql install).  Not a timed test.
# Environment (counts of the workload; defaults give ~1.05M row changes):
#   PG_CONFIG or PG_VERSION (scripts/lib/cluster.sh), SCALE (pgbench scale, 2), PGBENCH_TXNS (per client, 2 clients,
#   25000: 4 changes each), SINGLE (single-row INSERT transactions, 100000),
#   BULK (rows in each of 3 bulk INSERT transactions, 100000), SMALL_UPD
#   (10-row UPDATE transactions, 10000), BIG_UPD (rows of one UPDATE
#   transaction, 100000), SMALL_DEL (5-row DELETE transactions, 20000),
#   BIG_DEL (rows of one DELETE transaction, 100000).  BEFORE_BIN=<a pg_scribe
#   binary> also times that build's restore in the same run (before/after
#   figures).  KEEP=1 leaves the server and the files in place.

set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/lib/cluster.sh"
SCALE=${SCALE:-2}
PGBENCH_TXNS=${PGBENCH_TXNS:-25000}
SINGLE=${SINGLE:-100000}
BULK=${BULK:-100000}
SMALL_UPD=${SMALL_UPD:-10000}
BIG_UPD=${BIG_UPD:-100000}
SMALL_DEL=${SMALL_DEL:-20000}
BIG_DEL=${BIG_DEL:-100000}
export PG_BINDIR="$bindir"

cargo build --release -q --manifest-path "$here/Cargo.toml"
scribe="$here/target/release/pg_scribe"

cluster_create restore-diffs
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
# The extension first: pgbench_history (no primary key) then gets REPLICA IDENTITY FULL.
psql -d src -c "CREATE EXTENSION wal2sql"
"$bindir/pgbench" -q -i -s "$SCALE" src >/dev/null 2>&1
psql -d src -c "CREATE TABLE single (id int PRIMARY KEY, a text, b float8)" \
	-c "CREATE TABLE bulk (id int PRIMARY KEY, a text, n numeric, c timestamptz)" \
	-c "CREATE TABLE marker (label text PRIMARY KEY)"
"$scribe" --init -d src --backup-dir "$tmp/backups" --slot s >/dev/null 2>&1
chain=$(ls -d "$tmp"/backups/chain-*)
"$scribe" --start -d src --backup-dir "$tmp/backups" 2>"$tmp/streamer.log" &
streamer=$!
changes0=$(changes)

# Wait until the streamer has written everything up to now, then seal active.sql.
settle_and_rotate() {
	psql -d src -c "INSERT INTO marker VALUES ('$1')"
	n=0
	until grep -q "'$1'" "$chain/active.sql" 2>/dev/null; do
		n=$((n + 1))
		[ "$n" -lt 1200 ] || { echo "the streamer did not catch up"; cat "$tmp/streamer.log"; exit 1; }
		sleep 0.5
	done
	"$scribe" --rotate-diff --backup-dir "$tmp/backups" >/dev/null 2>&1
}

echo "workload: pgbench 2 x $PGBENCH_TXNS; $SINGLE single-row INSERT transactions; 3 x $BULK-row INSERT;"
echo "          $SMALL_UPD x 10-row UPDATE; $BIG_UPD-row UPDATE; $SMALL_DEL x 5-row DELETE; $BIG_DEL-row DELETE"
"$bindir/pgbench" -n -c 2 -t "$PGBENCH_TXNS" src >/dev/null 2>&1
python3 - "$SINGLE" <<'PY' | psql -d src >/dev/null
import sys
for i in range(int(sys.argv[1])):
    print("INSERT INTO single VALUES (%d, 'row %d', %d.5);" % (i, i, i))
PY
settle_and_rotate phase1
for k in 0 1 2; do
	psql -d src -c "INSERT INTO bulk SELECT g, md5(g::text), g / 7.0, now() FROM generate_series($k * $BULK + 1, ($k + 1) * $BULK) g"
done
python3 - "$SMALL_UPD" "$SINGLE" <<'PY' | psql -d src >/dev/null
import sys
n, rows = int(sys.argv[1]), int(sys.argv[2])
for t in range(n):
    ids = ", ".join(str((t * 10 + j) * 7919 % rows) for j in range(10))
    print("UPDATE single SET a = a || '+', b = b * 2 WHERE id IN (%s);" % ids)
PY
settle_and_rotate phase2
psql -d src -c "UPDATE bulk SET a = upper(a), n = n + 1 WHERE id <= $BIG_UPD"
python3 - "$SMALL_DEL" "$SINGLE" <<'PY' | psql -d src >/dev/null
import sys
n, rows = int(sys.argv[1]), int(sys.argv[2])
for t in range(n):
    ids = ", ".join(str(t * 5 + j) for j in range(5) if t * 5 + j < rows)
    if ids:
        print("DELETE FROM single WHERE id IN (%s);" % ids)
PY
psql -d src -c "DELETE FROM bulk WHERE id % 3 = 0 AND id <= 3 * $BIG_DEL"
"$bindir/pgbench" -n -c 2 -t 2000 src >/dev/null 2>&1
settle_and_rotate phase3
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

# pg_scribe --verify of the same chain (offline: manifests, digests, framing), then
# pg_scribe --restore, which runs the same checks on its files before touching the target.
v0=$(now)
"$scribe" --verify --backup-dir "$tmp/backups" >"$tmp/verify.log" 2>&1 || {
	cat "$tmp/verify.log"
	exit 1
}
v1=$(now)
# pg_scribe --restore: the "Applied" line carries the time of the diff phase alone.
"$scribe" --restore --backup-dir "$tmp/backups" -d r_scribe --create >"$tmp/restore.log" 2>&1 || {
	cat "$tmp/restore.log"
	exit 1
}
v2=$(now)
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

python3 - "$engine" "$t0" "$t1" "$t2" "$t3" "$txns" "$v0" "$v1" "$v2" "$nchanges" "$before" <<'PY'
import sys
engine = float(sys.argv[1])
verify = float(sys.argv[8]) - float(sys.argv[7])
restore = float(sys.argv[9]) - float(sys.argv[8])
print("pg_scribe --verify:               %7.2fs (%.1f%% of the whole restore, %7.2fs; target < 5%%)" % (verify, 100 * verify / restore, restore))
p1 = float(sys.argv[3]) - float(sys.argv[2])
pf = float(sys.argv[5]) - float(sys.argv[4])
txns, changes = int(sys.argv[6]), int(sys.argv[10])
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
