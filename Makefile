# itsd build entry points. `make test` and `make run` work on a fresh Debian machine with
# Swift installed: they install the system packages they need first.

SWIFT        ?= swift
PREFIX       ?= /usr/local
APT_PACKAGES := libuv1-dev pkg-config

BINDIR       := $(PREFIX)/bin
SYSCONFDIR   := $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR      := $(PREFIX)/lib/systemd/system
DOCDIR       := $(PREFIX)/share/doc/itsd

.PHONY: all deps test-deps build test test-c-client test-deploy test-load test-race run bench bench-deps install install-files clean

all: build

# Installs libuv's headers and pkg-config when they are missing (needs root and network).
deps:
	@if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists libuv; then \
		echo "installing $(APT_PACKAGES)"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(APT_PACKAGES); \
	fi

# What the tests use beyond the build: systemd-socket-activate and systemd-analyze; tmux, which
# runs `itsctl top` in a terminal; Debian's python3 with prometheus_client, the parser that checks
# `itsctl stats --prometheus`; qemu-storage-daemon (the vhost-user-blk back-end VhostDemoTests
# drive its-vhost-demo against).
test-deps: deps
	@if ! command -v systemd-socket-activate >/dev/null 2>&1 || ! command -v systemd-analyze >/dev/null 2>&1; then \
		echo "installing systemd (systemd-socket-activate, systemd-analyze)"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends systemd; \
	fi
	@if ! command -v tmux >/dev/null 2>&1 || ! /usr/bin/python3 -c 'import prometheus_client' >/dev/null 2>&1; then \
		echo "installing tmux and python3-prometheus-client"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tmux python3-prometheus-client; \
	fi
	@if ! command -v qemu-storage-daemon >/dev/null 2>&1; then \
		echo "installing qemu-system-common (qemu-storage-daemon)"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends qemu-system-common; \
	fi

build: deps
	$(SWIFT) build

test: test-deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --parallel
	$(MAKE) -C Protocol check
	$(MAKE) test-c-client
	$(MAKE) test-deploy
	$(MAKE) test-load

# its-load (debug build, from --build-tests above) in every mode with a few thousand MSIs against the
# itsd it starts itself: the JSON keys, the MSI count, every LPI injected and acknowledged, none lost.
test-load:
	python3 tools/bench/smoke_load.py "$$($(SWIFT) build --show-bin-path)/its-load"

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

# The standard suite (tools/bench/bench.py, about 4 minutes): its-load's modes and its-bench's micro
# benchmarks in release, three runs each; rewrites BENCHMARKS.md, docs/bench/results.json and the plots.
bench: deps bench-deps
	$(SWIFT) build -c release --product itsd
	$(SWIFT) build -c release --product its-load
	$(SWIFT) build -c release --product its-bench
	python3 tools/bench/bench.py "$$($(SWIFT) build -c release --show-bin-path)" "$(CURDIR)"

# gnuplot draws the plots.
bench-deps:
	@if ! command -v gnuplot >/dev/null 2>&1; then \
		echo "installing gnuplot-nox"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gnuplot-nox; \
	fi

# Installs the release binaries, the systemd units (with this PREFIX's paths), the sample
# configuration (kept if one is there) and the documents. DESTDIR stages the tree for packaging.
install: deps
	$(SWIFT) build -c release --product itsd
	$(SWIFT) build -c release --product itsctl
	$(MAKE) install-files BIN_PATH="$$($(SWIFT) build -c release --show-bin-path)"

install-files:
	install -d "$(DESTDIR)$(BINDIR)" "$(DESTDIR)$(UNITDIR)" "$(DESTDIR)$(SYSCONFDIR)/itsd" "$(DESTDIR)$(DOCDIR)"
	install -m 0755 "$(BIN_PATH)/itsd" "$(DESTDIR)$(BINDIR)/itsd"
	install -m 0755 "$(BIN_PATH)/itsctl" "$(DESTDIR)$(BINDIR)/itsctl"
	sed -e 's|/usr/local/bin|$(BINDIR)|g' -e 's|/usr/local/etc|$(SYSCONFDIR)|g' -e 's|/usr/local/share/doc/itsd|$(DOCDIR)|g' \
		deploy/itsd.service > "$(DESTDIR)$(UNITDIR)/itsd.service"
	chmod 0644 "$(DESTDIR)$(UNITDIR)/itsd.service"
	install -m 0644 deploy/itsd.socket "$(DESTDIR)$(UNITDIR)/itsd.socket"
	if [ ! -e "$(DESTDIR)$(SYSCONFDIR)/itsd/itsd.toml" ]; then install -m 0644 deploy/itsd.toml "$(DESTDIR)$(SYSCONFDIR)/itsd/itsd.toml"; fi
	install -m 0644 README.md docs/OPERATIONS.md docs/SEMANTICS.md docs/ARCHITECTURE.md docs/CLIENT.md docs/ITSCTL.md docs/INTEGRATION.md Protocol/PROTOCOL.md "$(DESTDIR)$(DOCDIR)/"

# The install tree with the debug build under a temporary PREFIX: systemd-analyze accepts the
# units as installed, and the installed itsd starts with the installed configuration through
# systemd-socket-activate and answers on the passed socket.
test-deploy: test-deps
	@set -u; dir="$$(mktemp -d /tmp/itsd-deploy.XXXXXX)"; pid=""; \
	trap 'if [ -n "$$pid" ]; then kill -KILL "$$pid" 2>/dev/null; fi; rm -rf "$$dir"' EXIT; \
	$(MAKE) --no-print-directory install-files PREFIX="$$dir" BIN_PATH="$$($(SWIFT) build --show-bin-path)" >/dev/null; \
	systemd-analyze verify "$$dir/lib/systemd/system/itsd.socket" "$$dir/lib/systemd/system/itsd.service"; \
	exec_start="$$(sed -n 's/^ExecStart=//p' "$$dir/lib/systemd/system/itsd.service")"; \
	systemd-socket-activate -l "$$dir/itsd.sock" $$exec_start --lanes 1 >"$$dir/itsd.log" 2>&1 & pid=$$!; \
	tries=0; until [ -S "$$dir/itsd.sock" ] || [ $$tries -ge 100 ]; do tries=$$((tries + 1)); sleep 0.1; done; \
	python3 -c 'import socket,struct,sys; s=socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1]); s.sendall(struct.pack("<IHHII",48,1,0,1,0)+struct.pack("<HHIQIIIHH",1,0,0,0,0,0,0,0,0)); r=s.recv(64); sys.exit(0 if len(r)==48 and r[6]&1 else 1)' "$$dir/itsd.sock" \
		|| { echo "no HELLO reply from the installed itsd:"; cat "$$dir/itsd.log"; exit 1; }; \
	"$$dir/bin/itsctl" ping --socket "$$dir/itsd.sock" >/dev/null \
		|| { echo "the installed itsctl got no answer:"; cat "$$dir/itsd.log"; exit 1; }; \
	kill -TERM "$$pid"; status=0; wait "$$pid" || status=$$?; pid=""; \
	if [ $$status -ne 0 ]; then echo "installed itsd exited with $$status:"; cat "$$dir/itsd.log"; exit 1; fi; \
	grep -q "socket activation" "$$dir/itsd.log" || { cat "$$dir/itsd.log"; exit 1; }; \
	echo "deploy: units verified; installed itsd served a socket-activated HELLO and the installed itsctl"

clean:
	rm -rf .build .build-tsan
