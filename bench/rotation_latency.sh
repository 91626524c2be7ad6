#!/bin/sh
# bench/rotation_latency.sh
#
# How long `pg_scribe --rotate-diff` takes, from the request to the seal, while the machine is
# busy: pgbench with more clients than cores plus one CPU-bound process per core, against the
# same rotations on the idle machine in the same run. Each rotation records the sequence values
# into the stream and waits for the stream to pass them, so a stream that lags (or a streamer
# that slows itself down while it waits) shows here.
#
# Needs wal2sql installed (make -C wal2sql install) and pg_scribe built. Not a timed test: it
# prints figures. Environment: PG_CONFIG, ROTATIONS (default 20), CLIENTS (default 2 x cores),
# PG_SCRIBE (default target/release/pg_scribe).

set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
bindir=$("$PG_CONFIG" --bindir)
ROTATIONS=${ROTATIONS:-20}
cores=$(nproc)
CLIENTS=${CLIENTS:-$((cores * 2))}
PG_SCRIBE=${PG_SCRIBE:-$here/target/release/pg_scribe}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pg_scribe-bench.XXXXXX")
chmod 755 "$tmp"
as_server() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$tmp"
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	as_server "$bindir/pg_ctl" -D "$tmp/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_server "$bindir/initdb" -D "$tmp/data" -U postgres -A trust --no-sync >/dev/null
cat >>"$tmp/data/postgresql.conf" <<CONF
port = $port
listen_addresses = ''
unix_socket_directories = '$tmp'
wal_level = logical
shared_preload_libraries = 'wal2sql'
CONF
if "$bindir/postgres" --describe-config 2>/dev/null | grep '^output_plugin_libraries' >/dev/null; then
	echo "output_plugin_libraries = 'pgoutput, test_decoding, wal2sql'" >>"$tmp/data/postgresql.conf"
fi
as_server "$bindir/pg_ctl" -D "$tmp/data" -l "$tmp/server.log" -w start >/dev/null

export PGHOST="$tmp" PGPORT="$port" PGUSER=postgres PGDATABASE=src
"$bindir/createdb" src
"$bindir/psql" -X -q -c "CREATE EXTENSION wal2sql" >/dev/null
"$bindir/pgbench" -i -q -s 5 >/dev/null 2>&1
"$PG_SCRIBE" --init -d src --backup-dir "$tmp/backups" --slot s >/dev/null 2>&1
"$PG_SCRIBE" --start -d src --backup-dir "$tmp/backups" -s 1 -F 1 2>"$tmp/scribe.log" &
scribe=$!; pids="$scribe"
sleep 2

# Times of ROTATIONS rotations, one a second, printed as "min median max" in seconds.
rotations() {
	i=0; : >"$tmp/times"
	while [ $i -lt "$ROTATIONS" ]; do
		"$bindir/psql" -X -q -c "UPDATE pgbench_branches SET bbalance = bbalance + 1 WHERE bid = 1" >/dev/null
		python3 - "$PG_SCRIBE" "$tmp/backups" >>"$tmp/times" <<'PY'
import subprocess, sys, time
t = time.monotonic()
r = subprocess.run([sys.argv[1], "--rotate-diff", "--backup-dir", sys.argv[2]], capture_output=True)
print("%.3f %d" % (time.monotonic() - t, r.returncode))
PY
		sleep 1; i=$((i + 1))
	done
	python3 - "$tmp/times" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
t = sorted(float(r[0]) for r in rows)
failed = sum(1 for r in rows if r[1] != "0")
print("min %.2f s, median %.2f s, max %.2f s, failed %d" % (t[0], t[len(t) // 2], t[-1], failed))
PY
}

echo "idle machine: $ROTATIONS rotations"
rotations
echo "busy machine: pgbench -c $CLIENTS and $cores CPU-bound processes, $ROTATIONS rotations"
"$bindir/pgbench" -n -c "$CLIENTS" -T 100000 >/dev/null 2>&1 &
pids="$pids $!"
i=0
while [ $i -lt "$cores" ]; do
	sh -c 'while :; do :; done' &
	pids="$pids $!"; i=$((i + 1))
done
rotations
