#!/bin/sh
# bench/stream_drain.sh
#
# Streaming throughput of pg_scribe --start against pg_recvlogical, same run,
# same plugin (wal2sql with the same options), same backlog, two slots
# created at the same point: the time each takes to drain a ~2M-change
# backlog (ROWS inserts, ROWS/2 updates, ROWS/2 deletes) into its output file
# with fsync on, and the ratio. Then the peak RSS of pg_scribe --start while
# one BIG-row transaction streams through.
#
# Needs wal2sql installed (make -C wal2sql install) and pg_scribe built
# (cargo build --release). Not a timed test: it prints figures.
# Environment: PG_CONFIG or PG_VERSION (scripts/lib/cluster.sh), ROWS (default 1000000), BIG (default 5000000),
# PG_SCRIBE (default target/release/pg_scribe).

set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/lib/cluster.sh"
ROWS=${ROWS:-1000000}
BIG=${BIG:-5000000}
PG_SCRIBE=${PG_SCRIBE:-$here/target/release/pg_scribe}
OPTS="-o batch-inserts=1000 -o batch-bytes=1048576"
export PG_BINDIR="$bindir"

cluster_create pg_scribe-bench
tmp=$cluster_dir
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	cluster_remove
}
trap cleanup EXIT INT TERM

cluster_start "shared_preload_libraries = 'wal2sql'" \
	"max_wal_size = 8GB" \
	"synchronous_commit = off" \
	"# Keep big transactions in memory on the server, so the clients' own cost shows." \
	"logical_decoding_work_mem = 1GB"

export PGDATABASE=src
now() { python3 -c 'import time; print(time.time())'; }

"$bindir/createdb" src
psql -c "CREATE EXTENSION wal2sql" \
	-c "CREATE TABLE big (id int PRIMARY KEY, a text, b float8, c timestamptz)" \
	-c "CREATE TABLE marker (label text PRIMARY KEY)"
"$PG_SCRIBE" --init -d src --backup-dir "$tmp/backups" --slot s >/dev/null 2>&1
"$bindir/pg_recvlogical" -d src -S r -P wal2sql --create-slot
chain=$(ls -d "$tmp"/backups/chain-*)

echo "backlog: $ROWS inserts, $((ROWS / 2)) updates, $((ROWS / 2)) deletes (one statement per transaction)"
psql -c "INSERT INTO big SELECT g, md5(g::text), g / 7.0, now() FROM generate_series(1, $ROWS) g"
psql -c "UPDATE big SET a = 'u' WHERE id % 2 = 0"
psql -c "DELETE FROM big WHERE id % 2 = 1"
psql -c "INSERT INTO marker VALUES ('drained')"

# CPU seconds (user + system) a process has used so far.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }

# Wait until a file's last bytes hold the marker's INSERT (the last transaction).
wait_for_marker() {
	while ! tail -c 400 "$1" 2>/dev/null | grep "'drained'" >/dev/null; do sleep 0.05; done
}

t2=$(now)
"$bindir/pg_recvlogical" -d src -S r --start -F 10 $OPTS -f "$tmp/recvlogical.sql" 2>"$tmp/recv.log" &
recv=$!; pids="$recv"
wait_for_marker "$tmp/recvlogical.sql"
t3=$(now)
recv_cpu=$(cpu "$recv")
kill -TERM "$recv"; wait "$recv" || true; pids=""

t0=$(now)
"$PG_SCRIBE" --start -d src --backup-dir "$tmp/backups" -F 10 2>"$tmp/scribe.log" &
scribe=$!; pids="$scribe"
wait_for_marker "$chain/active.sql"
t1=$(now)
scribe_cpu=$(cpu "$scribe")
kill -TERM "$scribe"; wait "$scribe" || true; pids=""

scribe_s=$(python3 -c "print('%.2f' % ($t1 - $t0))")
recv_s=$(python3 -c "print('%.2f' % ($t3 - $t2))")
echo "pg_scribe --start:  ${scribe_s} s, client CPU ${scribe_cpu} s ($(wc -c <"$chain/active.sql") bytes)"
echo "pg_recvlogical:     ${recv_s} s, client CPU ${recv_cpu} s ($(wc -c <"$tmp/recvlogical.sql") bytes)"
if cmp -s "$chain/active.sql" "$tmp/recvlogical.sql"; then echo "outputs: identical"; else echo "outputs: DIFFER"; fi
python3 -c "print('throughput ratio pg_scribe/pg_recvlogical: %.2f (target >= 1.0)' % ($recv_s / $scribe_s))"
python3 -c "print('client CPU ratio pg_recvlogical/pg_scribe: %.2f' % ($recv_cpu / max($scribe_cpu, 0.01)))"

echo "memory: one transaction of $BIG rows"
"$PG_SCRIBE" --start -d src --backup-dir "$tmp/backups" -F 10 2>>"$tmp/scribe.log" &
scribe=$!; pids="$scribe"
psql -c "CREATE TABLE huge (id bigint, payload text)"
peak=0
psql -c "INSERT INTO huge SELECT g, repeat('x', 50) FROM generate_series(1, $BIG) g" &
load=$!
psql -c "SELECT 1" >/dev/null
while kill -0 "$load" 2>/dev/null || ! tail -c 400 "$chain/active.sql" | grep "wal2sql commit" >/dev/null; do
	hwm=$(awk '/VmHWM/ {print $2}' "/proc/$scribe/status")
	[ "$hwm" -gt "$peak" ] && peak=$hwm
	sleep 0.2
	if ! kill -0 "$load" 2>/dev/null; then
		psql -c "INSERT INTO marker VALUES ('huge-done')"
		while ! tail -c 400 "$chain/active.sql" 2>/dev/null | grep "'huge-done'" >/dev/null; do
			hwm=$(awk '/VmHWM/ {print $2}' "/proc/$scribe/status")
			[ "$hwm" -gt "$peak" ] && peak=$hwm
			sleep 0.2
		done
		break
	fi
done
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$scribe/status")
[ "$hwm" -gt "$peak" ] && peak=$hwm
kill -TERM "$scribe"; wait "$scribe" || true; pids=""
python3 -c "print('pg_scribe peak RSS while streaming it: %.1f MB (target < 50 MB)' % ($peak / 1024.0))"
