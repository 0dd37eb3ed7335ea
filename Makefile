# itsd build entry points. `make test` and `make run` work on a fresh Debian machine with
# Swift installed: they install the system packages they need first.

SWIFT        ?= swift
PREFIX       ?= /usr/local
APT_PACKAGES := libuv1-dev pkg-config

.PHONY: all deps build test test-race run bench clean

all: build

# Installs libuv's headers and pkg-config when they are missing (needs root and network).
deps:
	@if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists libuv; then \
		echo "installing $(APT_PACKAGES)"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(APT_PACKAGES); \
	fi

build: deps
	$(SWIFT) build

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --parallel
	$(MAKE) -C Protocol check

# The server's concurrency tests under ThreadSanitizer; halt_on_error makes any report fail the run.
# Only the test bundle and itsd (which a test runs as a child process) are built: Swift 6.3.1 fails
# to compile its-bench with -sanitize=thread.
test-race: deps
	$(SWIFT) build --product itsdPackageTests --sanitize=thread --scratch-path .build-tsan
	$(SWIFT) build --product itsd --sanitize=thread --scratch-path .build-tsan
	TSAN_OPTIONS=halt_on_error=1 $(SWIFT) test --skip-build --sanitize=thread --scratch-path .build-tsan --filter ITSServerTests

# Builds in release and starts itsd in the foreground on its default socket; Ctrl-C stops it.
run: deps
	$(SWIFT) build -c release --product itsd
	$$($(SWIFT) build -c release --show-bin-path)/itsd

bench: deps
	$(SWIFT) build -c release --product its-bench
	for bench in lpi-map wire translate cmdq; do $$($(SWIFT) build -c release --show-bin-path)/its-bench $$bench --json; done

clean:
	rm -rf .build .build-tsan
