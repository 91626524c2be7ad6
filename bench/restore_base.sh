#!/bin/sh
# bench/restore_base.sh
#
# Restore speed of a large base (>= 1 GB of pg_dump output), same run, same server:
#
#   - psql -f base.sql                          (the plain base, by hand)
#   - pg_scribe --restore                       (plain base.sql: psql in one transaction)
#   - pg_scribe --restore                       (directory base: pg_restore, one transaction)
#   - pg_scribe --restore --jobs $JOBS          (directory base: pg_restore -j $JOBS)
#
# The source is pgbench at scale $SCALE plus a wide table of $WIDE rows; two
# backups of it are taken with pg_scribe --init into two backup directories
# (one plain, one with --jobs $JOBS: their times are printed too). Each
# restore goes into a new database, which is checked against the source (row
# count and a hash sum per table) and dropped before the next one, to keep
# disk use down (peak: the source, one copy, both bases: about 4 x the base).
# Prints the times and the ratios to psql -f.
#
# Needs wal2sql installed (make -C wal2sql install).  Not a timed test.
# Environment: PG_CONFIG or PG_VERSION (scripts/lib/cluster.sh), SCALE (70),
# WIDE (rows of the wide table, 800000), JOBS (2).  KEEP=1 leaves the server
# and the files in place.

set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/lib/cluster.sh"
SCALE=${SCALE:-70}
WIDE=${WIDE:-800000}
JOBS=${JOBS:-2}
export PG_BINDIR="$bindir"

cargo build --release -q --manifest-path "$here/Cargo.toml"
scribe="$here/target/release/pg_scribe"

cluster_create restore-base
tmp=$cluster_dir
cleanup() {
	if [ "${KEEP:-0}" = 1 ]; then
		echo "kept: $tmp (server on port $cluster_port; stop it with pg_ctl -D $tmp/data stop)"
		return
	fi
	cluster_remove
}
trap cleanup EXIT INT TERM

cluster_start "shared_preload_libraries = 'wal2sql'" "max_wal_size = 8GB" "fsync = off" \
	"maintenance_work_mem = 256MB" "checkpoint_timeout = 30min"

now() { python3 -c 'import time; print(time.time())'; }

"$bindir/createdb" src
psql -d src -c "CREATE EXTENSION wal2sql"
"$bindir/pgbench" -q -i -s "$SCALE" src >/dev/null 2>&1
psql -d src -c "CREATE TABLE wide (id int PRIMARY KEY, a text, b text, n numeric, c timestamptz)" \
	-c "INSERT INTO wide SELECT g, repeat(md5(g::text), 12), md5((g * 7)::text), g / 7.0, now() FROM generate_series(1, $WIDE) g" \
	-c "VACUUM ANALYZE"

t0=$(now)
"$scribe" --init -d src --backup-dir "$tmp/plain" --slot s_plain >"$tmp/init_plain.log" 2>&1 || {
	cat "$tmp/init_plain.log"
	exit 1
}
t1=$(now)
"$scribe" --init -d src --backup-dir "$tmp/dir" --slot s_dir --jobs "$JOBS" >"$tmp/init_dir.log" 2>&1 || {
	cat "$tmp/init_dir.log"
	exit 1
}
t2=$(now)
# The slots are not streamed: drop them so they hold no WAL back.
psql -d src -c "SELECT pg_drop_replication_slot('s_plain'), pg_drop_replication_slot('s_dir')" >/dev/null
plain_chain=$(ls -d "$tmp"/plain/chain-*)
dir_chain=$(ls -d "$tmp"/dir/chain-*)
base_bytes=$(wc -c <"$plain_chain/base.sql")
dir_bytes=$(du -sb "$dir_chain/base.dir" | cut -f1)
echo "source: pgbench scale $SCALE + $WIDE wide rows; base.sql $base_bytes bytes, base.dir $dir_bytes bytes"

check_sql="CREATE FUNCTION pg_temp.rows_sum(r regclass) RETURNS text LANGUAGE plpgsql AS \$\$
  DECLARE h text;
  BEGIN
    EXECUTE format('SELECT count(*) || '' '' || coalesce(sum(hashtext(t::text)::numeric), 0) FROM ONLY %s t', r) INTO h;
    RETURN h;
  END \$\$;
SELECT c.oid::regclass::text || ' ' || pg_temp.rows_sum(c.oid)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'wal2sql')
   AND n.nspname NOT LIKE 'pg\\_%'
 ORDER BY 1"
psql -d src -At -c "$check_sql" >"$tmp/sum_src"

# check DB: same rows as the source, then drop it.
check() {
	psql -d "$1" -At -c "$check_sql" >"$tmp/sum_$1"
	cmp -s "$tmp/sum_src" "$tmp/sum_$1" || {
		echo "$1 differs from the source:"
		diff "$tmp/sum_src" "$tmp/sum_$1" || true
		exit 1
	}
	"$bindir/dropdb" "$1"
}

timed() {
	log=$1
	shift
	s=$(now)
	"$@" >"$tmp/$log.log" 2>&1 || {
		cat "$tmp/$log.log"
		exit 1
	}
	e=$(now)
	python3 -c "print($e - $s)"
}

"$bindir/createdb" -T template0 r_psql
r_psql=$(timed psql env PGOPTIONS="-c wal2sql.capture=off" "$bindir/psql" -X -q -v ON_ERROR_STOP=1 \
	-d r_psql -f "$plain_chain/base.sql")
check r_psql
r_plain=$(timed scribe_plain "$scribe" --restore --backup-dir "$tmp/plain" -d r_plain --create)
check r_plain
r_dir1=$(timed scribe_dir1 "$scribe" --restore --backup-dir "$tmp/dir" -d r_dir1 --create)
check r_dir1
r_dirn=$(timed scribe_dirn "$scribe" --restore --backup-dir "$tmp/dir" -d r_dirn --create --jobs "$JOBS")
check r_dirn
grep "Restored base backup" "$tmp/scribe_dirn.log"
echo "row counts and hash sums: source = every restored database ($(wc -l <"$tmp/sum_src") tables)"

python3 - "$t0" "$t1" "$t2" "$r_psql" "$r_plain" "$r_dir1" "$r_dirn" "$JOBS" "$base_bytes" <<'PY'
import sys
t0, t1, t2, psql, plain, dir1, dirn = map(float, sys.argv[1:8])
jobs, size = int(sys.argv[8]), int(sys.argv[9])
mb = size / 1048576.0
print("pg_scribe --init (base.sql):              %7.2fs" % (t1 - t0))
print("pg_scribe --init --jobs %d (base.dir):     %7.2fs" % (jobs, t2 - t1))
print("psql -f base.sql:                         %7.2fs (%5.1f MB/s of base.sql)" % (psql, mb / psql))
print("pg_scribe --restore (base.sql):           %7.2fs" % plain)
print("pg_scribe --restore (base.dir, 1 job):    %7.2fs" % dir1)
print("pg_scribe --restore --jobs %d (base.dir):  %7.2fs" % (jobs, dirn))
print("ratio psql -f / pg_scribe --restore --jobs %d:            %.2fx" % (jobs, psql / dirn))
print("ratio pg_scribe --restore / pg_scribe --restore --jobs %d: %.2fx" % (jobs, plain / dirn))
PY
