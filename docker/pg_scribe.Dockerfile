# pg_scribe: the binary, its man page and completions, on a small Debian runtime with the
# PostgreSQL client programs it runs (pg_dump, pg_dumpall, psql).
#   docker build -f docker/pg_scribe.Dockerfile -t pg_scribe .      (from the repository root)
# The build stage runs the project's own steps, the ones CI runs: scripts/install-deps.sh, then
# make install into a staging directory.

ARG PG_MAJOR=15

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# PostgreSQL 15 headers, make, gcc: make install also builds the extension (unused here).
# PG_SCRIBE_EXTRA_PG= skips the other PostgreSQL majors that install-deps.sh fetches for the tests.
RUN PG_SCRIBE_EXTRA_PG= ./scripts/install-deps.sh \
 && make install DESTDIR=/staging PREFIX=/usr/local PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config

FROM debian:bookworm-slim
ARG PG_MAJOR
# pg_dump refuses servers newer than itself: PG_MAJOR must be at least the server's major version
# (bookworm ships 15; newer majors need the PGDG apt repository).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates tzdata postgresql-client-${PG_MAJOR} \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 999 --home-dir /backups --shell /usr/sbin/nologin pg_scribe \
 && install -d -o pg_scribe -g pg_scribe -m 0700 /backups
COPY --from=build /staging/usr/local/ /usr/local/
ENV PG_BINDIR=/usr/lib/postgresql/${PG_MAJOR}/bin
USER pg_scribe
WORKDIR /backups
VOLUME /backups
ENTRYPOINT ["pg_scribe"]
CMD ["--help"]
