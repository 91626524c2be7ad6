# PostgreSQL with the wal2sql extension installed and preloaded, ready for pg_scribe:
# wal_level=logical, shared_preload_libraries=wal2sql (exact DDL text), the output plugin
# allow-listed where the server knows output_plugin_libraries, and CREATE EXTENSION wal2sql in
# $POSTGRES_DB on first start.
#   docker build -f docker/postgres.Dockerfile -t pg_scribe-postgres .   (from the repository root)
# The build stage runs the project's own steps, the ones CI runs: scripts/install-deps.sh (the
# server headers and a compiler), then make -C wal2sql install into a staging directory.

ARG PG_MAJOR=15

# The Rust image only because install-deps.sh insists on a toolchain; nothing Rust is built here.
# PG_SCRIBE_EXTRA_PG= skips the other PostgreSQL majors that install-deps.sh fetches for the tests.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
ARG PG_MAJOR
RUN PG_SCRIBE_EXTRA_PG= ./scripts/install-deps.sh \
 && make -C wal2sql install DESTDIR=/staging PG_CONFIG=/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config

# Debian's and PGDG's builds of one major share the extension ABI and the install paths.
FROM postgres:${PG_MAJOR}-bookworm
COPY --from=build /staging/usr/ /usr/
COPY docker/initdb/ /docker-entrypoint-initdb.d/
# The image's initdb copies this sample into every new cluster.
RUN sample=/usr/share/postgresql/postgresql.conf.sample \
 && { echo; echo "# pg_scribe: logical decoding through wal2sql"; \
      echo "wal_level = logical"; \
      echo "max_replication_slots = 10"; \
      echo "max_wal_senders = 10"; \
      echo "shared_preload_libraries = 'wal2sql'"; } >>"$sample" \
 && if postgres --describe-config | grep -q '^output_plugin_libraries'; then \
      echo "output_plugin_libraries = 'pgoutput, wal2sql'" >>"$sample"; fi
