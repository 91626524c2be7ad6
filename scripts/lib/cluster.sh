# scripts/lib/cluster.sh: the throwaway PostgreSQL cluster of the shell scripts (scripts/demo.sh,
# bench/*.sh, wal2sql/test/run-regress.sh), sourced by them; POSIX sh. One temporary directory
# holds the data directory, the server log and the socket (no TCP), on a free port; logical
# decoding is on and wal2sql preloaded when it is installed. When run as root the server runs as
# the "postgres" OS user, since PostgreSQL refuses root.
#
# Which server: PG_BINDIR, else PG_CONFIG's bindir, else /usr/lib/postgresql/$PG_VERSION/bin
# (PG_VERSION defaults to 15; scripts/install-pg.sh provides 13, 14, 16, 17, 18), else pg_config
# in PATH.
#
#   cluster_create NAME      temp dir "$cluster_dir" (NAME.XXXXXX under $TMPDIR)
#   cluster_start [LINE...]  initdb (options: $cluster_initdb_opts, default UTF8 and C.UTF-8),
#                            add the postgresql.conf LINEs, start, export PGHOST/PGPORT/PGUSER
#   cluster_stop             immediate stop (for the caller's trap)
#   cluster_remove           stop, then remove the temp dir unless KEEP=1
# Also sets "$bindir" and PG_CONFIG, and defines as_server and psql.

if [ -n "${PG_BINDIR:-}" ]; then
	bindir=$PG_BINDIR
elif [ -n "${PG_CONFIG:-}" ]; then
	bindir=$("$PG_CONFIG" --bindir)
elif [ -x "/usr/lib/postgresql/${PG_VERSION:-15}/bin/postgres" ]; then
	bindir=/usr/lib/postgresql/${PG_VERSION:-15}/bin
elif command -v pg_config >/dev/null 2>&1; then
	bindir=$(pg_config --bindir)
else
	echo "pg_scribe: error: no PostgreSQL ${PG_VERSION:-15} server found" >&2
	echo "hint: set PG_CONFIG or PG_BINDIR, or run scripts/install-deps.sh" >&2
	exit 1
fi
PG_CONFIG=${PG_CONFIG:-$bindir/pg_config}
export PG_CONFIG

as_server() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

psql() { "$bindir/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

cluster_dir=
cluster_port=
cluster_initdb_opts=${cluster_initdb_opts:--E UTF8 --locale=C.UTF-8}

cluster_create() {
	cluster_dir=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
	chmod 755 "$cluster_dir"
	if [ "$(id -u)" = 0 ]; then
		chown postgres "$cluster_dir"
	fi
}

cluster_start() {
	cluster_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	# shellcheck disable=SC2086 # word splitting of the options is wanted
	as_server "$bindir/initdb" -D "$cluster_dir/data" -U postgres -A trust --no-sync \
		$cluster_initdb_opts >"$cluster_dir/initdb.log" 2>&1 ||
		{ cat "$cluster_dir/initdb.log" >&2; return 1; }
	{
		echo "port = $cluster_port"
		echo "listen_addresses = ''"
		echo "unix_socket_directories = '$cluster_dir'"
		echo "wal_level = logical"
		echo "max_wal_senders = 10"
		echo "max_replication_slots = 10"
		# Only minors since the 2026 releases know this setting; older ones refuse to start
		# with an unknown setting.
		if "$bindir/postgres" --describe-config 2>/dev/null | grep '^output_plugin_libraries' >/dev/null; then
			echo "output_plugin_libraries = 'pgoutput, test_decoding, wal2sql'"
		fi
		if [ -f "$("$PG_CONFIG" --pkglibdir)/wal2sql.so" ]; then
			echo "shared_preload_libraries = 'wal2sql'"
		fi
		for line in "$@"; do
			echo "$line"
		done
	} >>"$cluster_dir/data/postgresql.conf"
	as_server "$bindir/pg_ctl" -D "$cluster_dir/data" -l "$cluster_dir/server.log" -w start >/dev/null ||
		{ cat "$cluster_dir/server.log" >&2; return 1; }
	PGHOST=$cluster_dir PGPORT=$cluster_port PGUSER=postgres
	export PGHOST PGPORT PGUSER
}

cluster_stop() {
	if [ -n "$cluster_dir" ] && [ -d "$cluster_dir/data" ]; then
		as_server "$bindir/pg_ctl" -D "$cluster_dir/data" -m immediate stop >/dev/null 2>&1 || true
	fi
}

cluster_remove() {
	cluster_stop
	[ -n "$cluster_dir" ] || return 0
	if [ "${KEEP:-0}" = 1 ]; then
		echo "kept $cluster_dir"
	else
		rm -rf "$cluster_dir"
	fi
}
