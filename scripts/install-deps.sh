#!/usr/bin/env bash
# Install what a fresh Debian 12 machine lacks to build and test pg_scribe: the PostgreSQL 15
# server and its headers (for the wal2sql extension), a C toolchain, openssl (test certificates),
# the Prometheus text-format parser and systemd-analyze (tests of the monitoring output and the
# unit files), python3 with pip and venv, the system libraries the PyPI builds of the other
# majors link to, PostgreSQL 14, 16, 17 and 18 (scripts/install-pg.sh), moto's S3 server for the
# object-storage tests (scripts/install-moto.sh) and a Rust toolchain check.
# Idempotent: does nothing when everything is there. PG_SCRIBE_EXTRA_PG lists the majors to
# install besides 15 (default "14 16 17 18", the ones CI tests; 13 may be added; empty for
# none), PG_SCRIBE_NO_PG<N>=1 leaves major N out (PG_SCRIBE_NO_PG18=1 as before),
# PG_SCRIBE_NO_MOTO=1 leaves moto out.
set -euo pipefail

packages=(postgresql-15 postgresql-client-15 postgresql-server-dev-15 make gcc openssl python3 iptables
          python3-prometheus-client systemd python3-pip python3-venv libxml2 libxslt1.1 libpython3.11)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
    echo "pg_scribe: installing ${missing[*]}"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "pg_scribe: error: need root (or sudo) to install ${missing[*]}" >&2; exit 1; }
        sudo=sudo
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

for major in ${PG_SCRIBE_EXTRA_PG-14 16 17 18}; do
    skip=PG_SCRIBE_NO_PG$major
    if [ "${!skip:-0}" != 1 ]; then
        "$(dirname "$0")/install-pg.sh" "$major"
    fi
done

if [ "${PG_SCRIBE_NO_MOTO:-0}" != 1 ]; then
    "$(dirname "$0")/install-moto.sh"
fi

if ! command -v cargo >/dev/null && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
    echo "pg_scribe: error: no Rust toolchain found (cargo)" >&2
    echo "pg_scribe: hint: install it with rustup (https://rustup.rs), then run this again" >&2
    exit 1
fi
