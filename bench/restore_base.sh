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
# Prints the times (whole command, and the base phase alone from pg_scribe's
# summary line) and the ratios.
#
# Needs wal2sql installed (make -C wal2sql install).  Not a timed test.
# Environment: PG_CONFIG or PG_VERSION (scripts/lib/cluster.sh), SCALE (70),
# WIDE (rows of the wide table, 800000), JOBS (2), ROUNDS (each way this many
# times, interleaved; the best time counts: 2).  KEEP=1 leaves the server
# and the files in place.

set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/lib/cluster.sh"
SCALE=${SCALE:-70}
WIDE=${WIDE:-800000}
JOBS=${JOBS:-2}
ROUNDS=${ROUNDS:-2}
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

# Each way ROUNDS times, interleaved (the machine may be shared): the best time of each counts.
# base_time LOG: the base phase alone, from pg_scribe's summary line ("  - base…: … in 12.3s (…)").
base_time() {
	python3 - "$tmp/$1.log" <<'PY'
import re, sys
m = re.search(r"^  - base\.(?:sql|dir)\S*: .* in ([0-9hms. ]+) \(", open(sys.argv[1]).read(), re.M)
total = 0.0
for num, unit in re.findall(r"([0-9.]+)([hms])", m.group(1)):
    total += float(num) * {"h": 3600, "m": 60, "s": 1}[unit]
print(total)
PY
}
: >"$tmp/times"
round=1
while [ "$round" -le "$ROUNDS" ]; do
	"$bindir/createdb" -T template0 r_psql
	echo "psql $(timed psql env PGOPTIONS="-c wal2sql.capture=off" "$bindir/psql" -X -q -v ON_ERROR_STOP=1 \
		-d r_psql -f "$plain_chain/base.sql") 0" >>"$tmp/times"
	check r_psql
	for way in plain dir1 dirn; do
		case $way in
		plain) set -- --backup-dir "$tmp/plain" ;;
		dir1) set -- --backup-dir "$tmp/dir" ;;
		dirn) set -- --backup-dir "$tmp/dir" --jobs "$JOBS" ;;
		esac
		total=$(timed "scribe_$way" "$scribe" --restore -d "r_$way" --create "$@")
		echo "$way $total $(base_time "scribe_$way")" >>"$tmp/times"
		check "r_$way"
	done
	round=$((round + 1))
done
grep "Restored base backup" "$tmp/scribe_dirn.log"
echo "row counts and hash sums: source = every restored database ($(wc -l <"$tmp/sum_src") tables), $ROUNDS rounds"

python3 - "$t0" "$t1" "$t2" "$JOBS" "$base_bytes" "$tmp/times" <<'PY'
import sys
t0, t1, t2 = map(float, sys.argv[1:4])
jobs, size = int(sys.argv[4]), int(sys.argv[5])
best = {}
for line in open(sys.argv[6]):
    way, total, base = line.split()
    t = (float(total), float(base))
    if way not in best or t[0] < best[way][0]:
        best[way] = t
mb = size / 1048576.0
psql = best["psql"][0]
print("pg_scribe --init (base.sql):              %7.2fs" % (t1 - t0))
print("pg_scribe --init --jobs %d (base.dir):     %7.2fs" % (jobs, t2 - t1))
print("                                           whole    base phase")
print("psql -f base.sql:                         %7.2fs  %7.2fs (%5.1f MB/s)" % (psql, psql, mb / psql))
for way, label in [("plain", "pg_scribe --restore (base.sql):          "),
                   ("dir1", "pg_scribe --restore (base.dir, 1 job):   "),
                   ("dirn", "pg_scribe --restore --jobs %d (base.dir): " % jobs)]:
    total, base = best[way]
    print("%s %7.2fs  %7.2fs (%5.1f MB/s)" % (label, total, base, mb / base))
dirn = best["dirn"][0]
print("ratio psql -f / pg_scribe --restore --jobs %d:            %.2fx (base phase %.2fx)" % (jobs, psql / dirn, psql / best["dirn"][1]))
print("ratio pg_scribe --restore / pg_scribe --restore --jobs %d: %.2fx (base phase %.2fx)" % (jobs, best["plain"][0] / dirn, best["plain"][1] / best["dirn"][1]))
print("ratio pg_scribe --restore (base.dir) 1 job / %d jobs:     %.2fx (base phase %.2fx)" % (jobs, best["dir1"][0] / dirn, best["dir1"][1] / best["dirn"][1]))
PY
