#!/bin/sh
# wal2sql/test/run-regress.sh
#
# Runs the pg_regress suite of wal2sql against a private, throw-away
# cluster (scripts/lib/cluster.sh: initdb into a temporary directory, a free
# port, the socket in that directory, no TCP), runs "make installcheck"
# against it, prints regression.diffs on failure, stops and removes the
# cluster.  The exit status is that of the test run.
#
# The extension must already be installed ("make install").  When run as
# root, the server runs as the "postgres" OS user.
#
# Environment: PG_CONFIG or PG_VERSION choose the server (see
# scripts/lib/cluster.sh), WAL2SQL_KEEP=1 keeps the temporary directory.

set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/../scripts/lib/cluster.sh"
KEEP=${WAL2SQL_KEEP:-0}

cluster_create wal2sql-regress
trap cluster_remove EXIT INT TERM
cluster_initdb_opts="-E UTF8 --locale=C"
# shellcheck disable=SC2046 # one postgresql.conf line per argument
IFS='
'
set -- $(cat "$here/logical.conf") "fsync = off" "shared_preload_libraries = 'wal2sql'"
unset IFS
cluster_start "$@"

echo "wal2sql regression tests against $("$bindir/postgres" --version)"
if ! "$PG_CONFIG" --configure | grep -- '--with-libxml' >/dev/null; then
	echo "note: this server is built without libxml: the tests use text for their xml columns"
fi

status=0
make -C "$here" --no-print-directory installcheck PG_CONFIG="$PG_CONFIG" \
	PGHOST="$cluster_dir" PGPORT="$cluster_port" PGUSER=postgres || status=$?

if [ $status -ne 0 ]; then
	[ -f "$here/regression.diffs" ] && cat "$here/regression.diffs"
	echo "--- server log (tail) ---"
	tail -n 50 "$cluster_dir/server.log"
fi
exit $status
