#!/bin/sh
# bench/restore_apply.sh
#
# Replay speed of the differentials: pg_scribe --restore's in-process engine
# against "psql -f" of the same diff file, same run, same server, both with
# session_replication_role = replica, wal2sql.capture = off and
# synchronous_commit = off.  The backlog: pgbench traffic (many small
# transactions) plus single-row INSERT transactions and one bulk transaction,
# taken from the slot that pg_scribe --init created.  Prints both times, the
# transaction rate and the ratio; checks that both replays give the same rows.
#
# Needs wal2sql installed (make -C wal2sql install).  Not a timed test.
# Environment: PG_CONFIG, PGBENCH_TXNS (default 20000 per client, 2 clients),
# SINGLE (default 50000 single-row transactions), BULK (default 200000 rows).

set -eu
PG_CONFIG=${PG_CONFIG:-pg_config}
bindir=$("$PG_CONFIG" --bindir)
PGBENCH_TXNS=${PGBENCH_TXNS:-20000}
SINGLE=${SINGLE:-50000}
BULK=${BULK:-200000}
here=$(cd "$(dirname "$0")/.." && pwd)

cargo build --release -q --manifest-path "$here/Cargo.toml"
scribe="$here/target/release/pg_scribe"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/restore-bench.XXXXXX")
chmod 755 "$tmp"
as_server() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$tmp"
cleanup() { as_server "$bindir/pg_ctl" -D "$tmp/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_server "$bindir/initdb" -D "$tmp/data" -U postgres -A trust --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null
cat >>"$tmp/data/postgresql.conf" <<CONF
port = $port
listen_addresses = ''
unix_socket_directories = '$tmp'
wal_level = logical
shared_preload_libraries = 'wal2sql'
max_wal_size = 4GB
fsync = off
CONF
if "$bindir/postgres" --describe-config 2>/dev/null | grep -q '^output_plugin_libraries'; then
	echo "output_plugin_libraries = 'pgoutput, test_decoding, wal2sql'" >>"$tmp/data/postgresql.conf"
fi
as_server "$bindir/pg_ctl" -D "$tmp/data" -l "$tmp/server.log" -w start >/dev/null

export PGHOST="$tmp" PGPORT="$port" PGUSER=postgres
psql() { "$bindir/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
now() { python3 -c 'import time; print(time.time())'; }

"$bindir/createdb" src
# The extension first: pgbench_history (no primary key) then gets REPLICA IDENTITY FULL.
psql -d src -c "CREATE EXTENSION wal2sql"
"$bindir/pgbench" -q -i -s 2 src >/dev/null 2>&1
psql -d src -c "CREATE TABLE single (id int PRIMARY KEY, a text, b float8)" \
	-c "CREATE TABLE bulk (id int PRIMARY KEY, a text, c timestamptz)"
"$scribe" --init -d src --backup-dir "$tmp/backups" --slot s >/dev/null 2>&1
chain=$(ls -d "$tmp"/backups/chain-*)

echo "workload: pgbench 2 x $PGBENCH_TXNS transactions, $SINGLE single-row transactions, one $BULK-row transaction"
"$bindir/pgbench" -n -c 2 -t "$PGBENCH_TXNS" src >/dev/null 2>&1
i=0
{
	while [ "$i" -lt "$SINGLE" ]; do
		echo "INSERT INTO single VALUES ($i, 'row $i', $i.5);"
		i=$((i + 1))
	done
} | psql -d src >/dev/null
psql -d src -c "INSERT INTO bulk SELECT g, md5(g::text), now() FROM generate_series(1, $BULK) g"
psql -d src -At -c "SELECT data FROM pg_logical_slot_get_changes('s', NULL, NULL)" >"$chain/diff-20300101T000000Z.sql"
chmod 600 "$chain/diff-20300101T000000Z.sql"
size=$(du -h "$chain/diff-20300101T000000Z.sql" | cut -f1)
txns=$(grep -c '^-- wal2sql begin ' "$chain/diff-20300101T000000Z.sql")
echo "diff: $size, $txns transactions"

# pg_scribe --restore: the "Applied" line carries the time of the diff phase alone.
"$scribe" --restore --backup-dir "$tmp/backups" -d r_scribe --create >"$tmp/restore.log" 2>&1 || {
	cat "$tmp/restore.log"
	exit 1
}
engine=$(sed -n 's/.*Applied .* in \([0-9.]*\)s)$/\1/p' "$tmp/restore.log")
if [ -z "$engine" ]; then
	cat "$tmp/restore.log"
	echo "could not read the apply time (over a minute?)"
	exit 1
fi

# psql -f of the same diff onto the same base.
"$bindir/createdb" -T template0 r_psql
psql -d r_psql -f "$chain/globals.sql" >/dev/null 2>&1 || true
PGOPTIONS="-c wal2sql.capture=off" psql -d r_psql -1 -f "$chain/base.sql" >/dev/null
t0=$(now)
PGOPTIONS="-c session_replication_role=replica -c wal2sql.capture=off -c synchronous_commit=off" \
	psql -d r_psql -f "$chain/diff-20300101T000000Z.sql" >/dev/null
t1=$(now)

digest="SELECT string_agg(c.relname || ' ' || (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I', c.relname), false, true, '')))[1]::text, ', ' ORDER BY 1) FROM pg_class c WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace"
a=$(psql -d r_scribe -At -c "$digest")
b=$(psql -d r_psql -At -c "$digest")
[ "$a" = "$b" ] || { echo "row counts differ: $a / $b"; exit 1; }

python3 - "$engine" "$t0" "$t1" "$txns" <<'PY'
import sys
engine = float(sys.argv[1]); psql = float(sys.argv[3]) - float(sys.argv[2]); txns = int(sys.argv[4])
print("pg_scribe --restore (diff phase): %.2fs (%.0f txn/s)" % (engine, txns / engine))
print("psql -f:                          %.2fs (%.0f txn/s)" % (psql, txns / psql))
print("ratio psql/pg_scribe: %.2fx (target >= 4x)" % (psql / engine))
PY
