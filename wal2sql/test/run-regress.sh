#!/bin/sh
# wal2sql/test/run-regress.sh
#
# Runs the pg_regress suite of wal2sql against a private, throw-away
# cluster: initdb into a temporary directory, start it on a free port with
# its socket in that directory (no TCP), run "make installcheck" against it,
# print regression.diffs on failure, stop and remove the cluster.
# The exit status is that of the test run.
#
# The extension must already be installed ("make install").  When run as
# root, the server runs as the "postgres" OS user.
#
# Environment: PG_CONFIG (default: pg_config in PATH), WAL2SQL_KEEP=1 keeps
# the temporary directory.

set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-pg_config}
bindir=$("$PG_CONFIG" --bindir)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wal2sql-regress.XXXXXX")
chmod 755 "$tmp"

as_server() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

if [ "$(id -u)" = 0 ]; then
	chown postgres "$tmp"
fi

cleanup() {
	as_server "$bindir/pg_ctl" -D "$tmp/data" -m immediate stop >/dev/null 2>&1 || true
	if [ "${WAL2SQL_KEEP:-0}" = 1 ]; then
		echo "kept $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT INT TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

as_server "$bindir/initdb" -D "$tmp/data" -U postgres -A trust --no-sync \
	-E UTF8 --locale=C >"$tmp/initdb.log" 2>&1 || { cat "$tmp/initdb.log"; exit 1; }

{
	cat "$here/logical.conf"
	echo "port = $port"
	echo "listen_addresses = ''"
	echo "unix_socket_directories = '$tmp'"
	echo "shared_preload_libraries = 'wal2sql'"
	echo "fsync = off"
	# Only minors since the 2026 releases know this setting; older ones
	# refuse to start with an unknown setting.
	if "$bindir/postgres" --describe-config 2>/dev/null | grep -q '^output_plugin_libraries'; then
		echo "output_plugin_libraries = 'pgoutput, test_decoding, wal2sql'"
	fi
} >>"$tmp/data/postgresql.conf"

as_server "$bindir/pg_ctl" -D "$tmp/data" -l "$tmp/server.log" -w start >/dev/null ||
	{ cat "$tmp/server.log"; exit 1; }

status=0
make -C "$here" --no-print-directory installcheck PG_CONFIG="$PG_CONFIG" \
	PGHOST="$tmp" PGPORT="$port" PGUSER=postgres || status=$?

if [ $status -ne 0 ]; then
	[ -f "$here/regression.diffs" ] && cat "$here/regression.diffs"
	echo "--- server log (tail) ---"
	tail -n 50 "$tmp/server.log"
fi
exit $status
