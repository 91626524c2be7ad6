#!/bin/sh
# bench/verify_generated.sh
#
# Cost of pg_scribe --verify on differentials shaped like those of
# bench/restore_diffs.sh (184,008 transactions, ~1.3M statement lines,
# ~157 MB in 3 files), generated instead of streamed: no server needed, so it
# runs in seconds on a loaded machine.  Prints the time of two runs (the
# first warms the page cache).  Compare with the diff phase of a restore of
# a chain that size (doc/benchmarks.md).  Not a timed test.

set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release -q --manifest-path "$here/Cargo.toml"
scribe="$here/target/release/pg_scribe"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/verify-generated.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

python3 - "$tmp/backups" <<'PY'
import hashlib, json, os, sys
root = sys.argv[1]
chain = os.path.join(root, "chain-20261201T000000Z")
os.makedirs(chain, mode=0o700, exist_ok=True)
files = []
for n in ("base.sql", "globals.sql"):
    data = b"-- dump\n"
    open(os.path.join(chain, n), "wb").write(data)
    files.append({"name": n, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
md = {"format": 1, "pg_scribe_version": "0.1.0", "chain_id": "20261201T000000Z",
      "server_version": "15", "server_version_num": 150000, "database": "x", "encoding": "UTF8",
      "lc_collate": "C", "lc_ctype": "C", "extensions": [], "slot": "s", "start_lsn": "0/1000",
      "system_identifier": "1", "timeline": 1, "compression": "none", "files": files,
      "manifests": False, "created_at": "2026-12-01T00:00:00Z"}
open(os.path.join(chain, "metadata.json"), "w").write(json.dumps(md))
open(os.path.join(chain, "COMPLETE"), "w").write("x\n")
# ~184k transactions, ~1.08M statement lines, ~158 MB, in 3 files
lsn = 0x2000
xid = 1000
target_lines = 1084319
txns = 184008
per = target_lines // txns  # statements per txn
pad = "x" * 95
for f in range(3):
    out = open(os.path.join(chain, "diff-20261201T00000%dZ.sql" % (f + 1)), "w")
    for t in range(txns // 3):
        xid += 1
        c = lsn + 0x10; e = lsn + 0x48; lsn += 0x100
        L = lambda v: "%X/%X" % (v >> 32, v & 0xffffffff)
        out.write("-- wal2sql begin xid=%d commit_lsn=%s end_lsn=%s commit_time=2026-12-01T00:00:00.%06dZ\nBEGIN;\n" % (xid, L(c), L(e), t % 1000000))
        for s in range(per):
            out.write("INSERT INTO public.t (id, v) VALUES ('%d', '%s');\n" % (xid * 10 + s, pad))
        out.write("COMMIT;\n-- wal2sql commit end_lsn=%s\n" % L(e))
    out.close()
PY
du -sh "$tmp/backups"
for run in 1 2; do
	t0=$(python3 -c 'import time; print(time.time())')
	"$scribe" --verify --backup-dir "$tmp/backups" >/dev/null
	t1=$(python3 -c 'import time; print(time.time())')
	python3 -c "print('pg_scribe --verify, run $run: %.2fs' % ($t1 - $t0))"
done
