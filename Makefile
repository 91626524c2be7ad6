# pg_scribe: build, install, test and demo.
#   make deps     install what a fresh Debian 12 machine lacks (needs root or sudo)
#   make install  the wal2sql extension (into the server of the pg_config on PATH, or PG_CONFIG=)
#                 and pg_scribe with its man page and bash/zsh/fish completions (PREFIX, DESTDIR);
#                 it runs no package manager
#   make test     everything: unit, integration (throwaway clusters) and wal2sql regression tests
#   make demo     init, stream, rotate, restore and verify on a throwaway local cluster
# PG_VERSION=N runs them against PostgreSQL N (15 by default; make deps installs 14, 16, 17 and 18;
# doc/testing.md); PG_CONFIG, when given, chooses the server instead.

PG_VERSION ?= 15
PG_CONFIG ?= $(firstword $(wildcard /usr/lib/postgresql/$(PG_VERSION)/bin/pg_config) pg_config)
PREFIX ?= /usr/local
CARGO ?= $(shell command -v cargo 2>/dev/null || echo $(HOME)/.cargo/bin/cargo)
export PG_BINDIR := $(shell $(PG_CONFIG) --bindir 2>/dev/null)

.PHONY: all deps build install install-extension test-extension install-binary test test-rust test-wal2sql demo lint clean

all: build

deps:
	./scripts/install-deps.sh

# The man page and completions are generated from the CLI definition (pg_scribe --generate).
GENERATED := target/release/generated
build:
	$(CARGO) build --release
	mkdir -p $(GENERATED)
	target/release/pg_scribe --generate man >$(GENERATED)/pg_scribe.1
	target/release/pg_scribe --generate bash >$(GENERATED)/pg_scribe.bash
	target/release/pg_scribe --generate zsh >$(GENERATED)/_pg_scribe
	target/release/pg_scribe --generate fish >$(GENERATED)/pg_scribe.fish

# make install: the server the user chose (PG_CONFIG= on the command line or in the environment,
# else the pg_config on PATH), never the one `make deps` installed for the tests.
INSTALL_PG_CONFIG := $(if $(filter command line environment,$(origin PG_CONFIG)),$(PG_CONFIG),pg_config)

install-extension:
	@command -v $(INSTALL_PG_CONFIG) >/dev/null || { \
		echo 'pg_scribe: error: no pg_config found ("$(INSTALL_PG_CONFIG)")' >&2; \
		echo 'pg_scribe: hint: Install the server development package of your PostgreSQL, or name its pg_config: make install PG_CONFIG=/usr/lib/postgresql/17/bin/pg_config' >&2; \
		exit 1; }
	if [ -d wal2sql ]; then $(MAKE) -C wal2sql PG_CONFIG=$(INSTALL_PG_CONFIG) install; fi

# make test and make demo set the machine up first, then install into the server they test against.
test-extension: deps
	if [ -d wal2sql ]; then $(MAKE) -C wal2sql PG_CONFIG=$(PG_CONFIG) install; fi

install-binary: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions \
		$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 0755 target/release/pg_scribe $(DESTDIR)$(PREFIX)/bin/pg_scribe
	install -m 0644 $(GENERATED)/pg_scribe.1 $(DESTDIR)$(PREFIX)/share/man/man1/pg_scribe.1
	install -m 0644 $(GENERATED)/pg_scribe.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/pg_scribe
	install -m 0644 $(GENERATED)/_pg_scribe $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_pg_scribe
	install -m 0644 $(GENERATED)/pg_scribe.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/pg_scribe.fish
	# systemd units to copy into /etc/systemd/system (doc/operations.md), naming this binary.
	install -d $(DESTDIR)$(PREFIX)/share/pg_scribe/systemd
	for f in $(wildcard contrib/systemd/*); do \
		sed 's#/usr/local/bin/pg_scribe#$(PREFIX)/bin/pg_scribe#' $$f > $(DESTDIR)$(PREFIX)/share/pg_scribe/systemd/$$(basename $$f); \
		chmod 0644 $(DESTDIR)$(PREFIX)/share/pg_scribe/systemd/$$(basename $$f); \
	done

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
