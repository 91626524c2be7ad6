#!/usr/bin/env bash
# Install the S3-compatible server the object-storage tests start (tests/integration/s3_server.rs):
# moto's server mode from PyPI, in a virtual environment of its own under $MOTO_HOME so that it
# neither needs nor touches the system's Python packages (Debian 12 refuses a system-wide pip
# install). The tests run $MOTO_HOME/bin/python -m moto.server (PG_SCRIBE_MOTO_PYTHON overrides
# the interpreter). Idempotent, and quick when already installed. Needs root (or sudo), python3
# with its venv module, and access to PyPI.
set -euo pipefail

MOTO_HOME=${MOTO_HOME:-/opt/pg_scribe/moto}
MOTO_SPEC=${MOTO_SPEC:-moto[server]>=5.1,<6}

# Everything the server mode imports, so a half-finished earlier install is redone.
if "$MOTO_HOME/bin/python" -c 'import moto.server, flask, flask_cors, boto3' 2>/dev/null; then
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "pg_scribe: error: need root (or sudo) to install moto into $MOTO_HOME" >&2; exit 1; }
    sudo=sudo
fi

echo "pg_scribe: installing $MOTO_SPEC into $MOTO_HOME"
# A venv records its own path, so it is built in place; the import check above is what tells a
# complete install from an interrupted one. Its interpreter links to the base python, so that is
# the system's (a root-only pyenv python would leave other users with a dangling link).
base=/usr/bin/python3
[ -x "$base" ] || base=$(command -v python3)
$sudo rm -rf "$MOTO_HOME"
$sudo mkdir -p "$(dirname "$MOTO_HOME")"
$sudo "$base" -m venv "$MOTO_HOME"
$sudo "$MOTO_HOME/bin/python" -m pip install --quiet --disable-pip-version-check "$MOTO_SPEC"
$sudo chmod -R a+rX "$MOTO_HOME"
"$MOTO_HOME/bin/python" -c 'import moto.server, flask, flask_cors, boto3' ||
    { echo "pg_scribe: error: moto installed into $MOTO_HOME but its server mode does not import" >&2; exit 1; }
echo "pg_scribe: moto $("$MOTO_HOME/bin/python" -c 'import moto; print(moto.__version__)') installed in $MOTO_HOME"
