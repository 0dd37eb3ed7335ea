# itsd build entry points. `make test` and `make run` work on a fresh Debian machine with
# Swift installed: they install the system packages they need first.

SWIFT        ?= swift
PREFIX       ?= /usr/local
APT_PACKAGES := libuv1-dev pkg-config

.PHONY: all deps build test test-c-client test-race run bench clean

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
	$(MAKE) test-c-client

# Protocol/examples/c-client against the debug itsd (built above by --build-tests) on a temporary
# socket. Fails when the client fails, when itsd does not come up within 10 s, or when itsd does not
# exit 0 within 10 s of SIGTERM; the trap kills itsd and removes the directory however the recipe ends.
test-c-client:
	$(MAKE) -C Protocol c-client
	@set -u; \
	itsd="$$($(SWIFT) build --show-bin-path)/itsd"; \
	dir="$$(mktemp -d /tmp/itsd-c-client.XXXXXX)"; socket="$$dir/itsd.sock"; pid=""; \
	trap 'if [ -n "$$pid" ]; then kill -KILL "$$pid" 2>/dev/null; fi; rm -rf "$$dir"' EXIT; \
	trap 'exit 1' HUP INT TERM; \
	"$$itsd" --socket "$$socket" --lanes 2 >"$$dir/itsd.log" 2>&1 & pid=$$!; \
	tries=0; \
	until [ -S "$$socket" ]; do \
		if ! kill -0 "$$pid" 2>/dev/null || [ $$tries -ge 100 ]; then \
			echo "itsd did not create $$socket:"; cat "$$dir/itsd.log"; exit 1; \
		fi; \
		tries=$$((tries + 1)); sleep 0.1; \
	done; \
	client=0; timeout 60 Protocol/build/c-client "$$socket" || client=$$?; \
	kill -TERM "$$pid"; \
	tries=0; \
	while kill -0 "$$pid" 2>/dev/null && [ $$tries -lt 100 ]; do tries=$$((tries + 1)); sleep 0.1; done; \
	if kill -0 "$$pid" 2>/dev/null; then echo "itsd did not exit within 10 s of SIGTERM"; cat "$$dir/itsd.log"; exit 1; fi; \
	server=0; wait "$$pid" || server=$$?; pid=""; \
	if [ $$client -ne 0 ]; then echo "c-client failed (exit $$client); itsd's log:"; cat "$$dir/itsd.log"; exit 1; fi; \
	if [ $$server -ne 0 ]; then echo "itsd exited with $$server after SIGTERM:"; cat "$$dir/itsd.log"; exit 1; fi; \
	echo "c-client passed; itsd exited cleanly"

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
