# pg_scribe: build, install, test and demo.
#   make deps     install what a fresh Debian 12 machine lacks (needs root or sudo)
#   make install  the wal2sql extension (into the server of the pg_config on PATH, or PG_CONFIG=)
#                 and the pg_scribe binary (PREFIX, DESTDIR); it runs no package manager
#   make test     everything: unit, integration (throwaway clusters) and wal2sql regression tests
#   make demo     init, stream, rotate, restore and verify on a throwaway local cluster

PG_CONFIG ?= $(firstword $(wildcard /usr/lib/postgresql/15/bin/pg_config) pg_config)
PREFIX ?= /usr/local
CARGO ?= $(shell command -v cargo 2>/dev/null || echo $(HOME)/.cargo/bin/cargo)
export PG_BINDIR := $(shell $(PG_CONFIG) --bindir 2>/dev/null)

.PHONY: all deps build install install-extension test-extension install-binary test test-rust test-wal2sql demo lint clean

all: build

deps:
	./scripts/install-deps.sh

build:
	$(CARGO) build --release

# make install: the server the user chose (PG_CONFIG= on the command line or in the environment,
# else the pg_config on PATH), never the one `make deps` installed for the tests.
INSTALL_PG_CONFIG := $(if $(filter command line environment,$(origin PG_CONFIG)),$(PG_CONFIG),pg_config)

install-extension:
	if [ -d wal2sql ]; then $(MAKE) -C wal2sql PG_CONFIG=$(INSTALL_PG_CONFIG) install; fi

# make test and make demo set the machine up first, then install into the server they test against.
test-extension: deps
	if [ -d wal2sql ]; then $(MAKE) -C wal2sql PG_CONFIG=$(PG_CONFIG) install; fi

install-binary: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 target/release/pg_scribe $(DESTDIR)$(PREFIX)/bin/pg_scribe

install: install-extension install-binary

test: test-extension test-wal2sql test-rust

test-rust:
	$(CARGO) test --all-targets

test-wal2sql:
	if [ -x wal2sql/test/run-regress.sh ]; then PG_CONFIG=$(PG_CONFIG) wal2sql/test/run-regress.sh; fi

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

demo: test-extension build
	./scripts/demo.sh

clean:
	$(CARGO) clean
	if [ -d wal2sql ]; then $(MAKE) -C wal2sql PG_CONFIG=$(PG_CONFIG) clean; fi
