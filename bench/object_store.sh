#!/bin/sh
# bench/object_store.sh
#
# Sealing and restoring a chain through an S3-compatible store (moto's server mode, on this
# machine) against the same chain in a local directory, same run, same source: two backups of
# one database (two slots), one with --backup-dir DIR, one with --backup-dir s3://bench/app.
# A workload of ROWS inserted rows (about 130 bytes of differential each: the default 8M rows
# make a ~1 GB differential), then
#
#   - seal: --rotate-diff for both; for the store, until the streamer says the file is uploaded
#   - verify: pg_scribe --verify of both (reads every file; from the store, over HTTP)
#   - restore: pg_scribe --restore --create of both
#
# and checks that both restored databases have the source's per-table row digests. moto keeps
# the objects in the memory of one Python process: a real store is at least as fast to write,
# and reads scale with it; the ratios are an upper bound on the cost of the store itself.
#
# Needs wal2sql installed and python3 with moto (scripts/install-deps.sh). Not a timed test.
# Environment: ROWS (8000000), PG_CONFIG or PG_VERSION (scripts/lib/cluster.sh), KEEP=1 leaves
# the server and the files in place.

set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/lib/cluster.sh"
ROWS=${ROWS:-8000000}
export PG_BINDIR="$bindir"

cargo build --release -q --manifest-path "$here/Cargo.toml"
scribe="$here/target/release/pg_scribe"

cluster_create object-store
tmp=$cluster_dir
moto= local_streamer= remote_streamer=
cleanup() {
	for p in $local_streamer $remote_streamer $moto; do kill "$p" 2>/dev/null || true; done
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

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m moto.server -H 127.0.0.1 -p "$port" >"$tmp/moto.log" 2>&1 &
moto=$!
python3 - "$port" <<'PY'
import sys, time, urllib.request
url = "http://127.0.0.1:%s/bench" % sys.argv[1]
for _ in range(600):
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="PUT"))
        sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit("moto did not come up")
PY
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
url=s3://bench/app
spool="$tmp/spool"

"$bindir/createdb" src
psql -d src -c "CREATE EXTENSION wal2sql" \
	-c "CREATE TABLE t (id bigint PRIMARY KEY, a text, b text, n numeric)" \
	-c "CREATE TABLE marker (label text PRIMARY KEY)"
"$scribe" --init -d src --backup-dir "$tmp/local" --slot l >/dev/null 2>&1
"$scribe" --init -d src --backup-dir "$url" --spool-dir "$spool" --slot r >/dev/null 2>&1
"$scribe" --start -d src --backup-dir "$tmp/local" 2>"$tmp/local.log" &
local_streamer=$!
"$scribe" --start -d src --backup-dir "$url" --spool-dir "$spool" 2>"$tmp/remote.log" &
remote_streamer=$!

echo "workload: $ROWS rows inserted in transactions of 100000"
i=0
while [ "$i" -lt "$ROWS" ]; do
	psql -d src -c "INSERT INTO t SELECT g, md5(g::text), md5((g + 1)::text), g / 7.0 FROM generate_series($i + 1, $i + 100000) g"
	i=$((i + 100000))
done
psql -d src -c "INSERT INTO marker VALUES ('done')"
for d in "$tmp/local" "$spool"; do
	n=0
	until grep -q "'done'" "$d"/chain-*/active.sql 2>/dev/null; do
		n=$((n + 1))
		[ "$n" -lt 3600 ] || { echo "a streamer did not catch up"; exit 1; }
		sleep 0.5
	done
done

# Seal: local, then through the store (sealed locally, then uploaded by the streamer).
s0=$(now)
"$scribe" --rotate-diff --backup-dir "$tmp/local" >/dev/null 2>&1
s1=$(now)
"$scribe" --rotate-diff --backup-dir "$url" --spool-dir "$spool" >/dev/null 2>&1
s2=$(now)
n=0
until grep -q 'Uploaded chain-.*/diff-.*\.sql (' "$tmp/remote.log"; do
	n=$((n + 1))
	[ "$n" -lt 36000 ] || { echo "the upload did not finish"; cat "$tmp/remote.log"; exit 1; }
	sleep 0.1
done
s3=$(now)
size=$(cat "$tmp"/local/chain-*/diff-*.sql | wc -c)
echo "differential: $size bytes"
kill -TERM "$local_streamer" "$remote_streamer"
wait "$local_streamer" "$remote_streamer" || true
local_streamer= remote_streamer=

v0=$(now)
"$scribe" --verify --backup-dir "$tmp/local" >/dev/null 2>&1
v1=$(now)
"$scribe" --verify --backup-dir "$url" >/dev/null 2>&1
v2=$(now)
"$scribe" --restore --backup-dir "$tmp/local" -d r_local --create >"$tmp/r_local.log" 2>&1 ||
	{ cat "$tmp/r_local.log"; exit 1; }
r1=$(now)
"$scribe" --restore --backup-dir "$url" -d r_store --create >"$tmp/r_store.log" 2>&1 ||
	{ cat "$tmp/r_store.log"; exit 1; }
r2=$(now)

digest_sql="SELECT count(*) || ' ' || md5(string_agg(t::text, '|' ORDER BY id)) FROM t"
src_digest=$(psql -d src -At -c "$digest_sql")
for db in r_local r_store; do
	[ "$(psql -d "$db" -At -c "$digest_sql")" = "$src_digest" ] || { echo "$db differs from the source"; exit 1; }
done
echo "row digests: source = restored from the directory = restored from the store"

python3 - "$s0" "$s1" "$s2" "$s3" "$v0" "$v1" "$v2" "$r1" "$r2" "$size" <<'PY'
import sys
s0, s1, s2, s3, v0, v1, v2, r1, r2 = map(float, sys.argv[1:10])
size = int(sys.argv[10]) / 1e6
rows = [
    ("seal", s1 - s0, s3 - s2),
    ("verify", v1 - v0, v2 - v1),
    ("restore", r1 - v2, r2 - r1),
]
print("%-8s %12s %12s %8s" % ("", "directory", "store", "ratio"))
for name, d, s in rows:
    print("%-8s %11.2fs %11.2fs %7.2fx" % (name, d, s, s / d))
print("upload of the sealed differential: %.1f MB/s" % (size / max(s3 - s2, 1e-9)))
PY
