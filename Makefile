# idleguard: `make run` builds everything and starts the demo; `make test`
# runs every test (Go, the module under Node, and Chromium end to end).
GO       ?= go
GOROOT   := $(shell $(GO) env GOROOT)
WASM_DIR := $(GOROOT)/lib/wasm
BUILD    := web/build
WASM_SRC := $(shell find wasm server/protocol -name '*.go' -not -name '*_test.go')

.PHONY: all build wasm run run-cluster test test-go test-race test-e2e test-wasm chromium redis postgres fuzz bench bench-cluster clean

all: build

build: wasm
	$(GO) build -o bin/idleguard ./server/cmd/idleguard

# The brotli module is what every till downloads: make wasm fails when it
# grows past WASM_BR_MAX bytes. The check is in the phony target, so it runs
# even when the file is up to date.
WASM_BR_MAX := 480000
wasm: $(BUILD)/idleguard.wasm.br
	@size=$$(stat -c %s $<) && echo "$<: $$size bytes (limit $(WASM_BR_MAX))" && \
	  if [ "$$size" -gt $(WASM_BR_MAX) ]; then \
	    echo "$<: $$size bytes is over the limit of $(WASM_BR_MAX): shrink the module (see wasm/deps.txt)" >&2; exit 1; fi

$(BUILD)/idleguard.wasm: $(WASM_SRC) go.mod
	GOOS=js GOARCH=wasm $(GO) build -trimpath -ldflags='-s -w' -o $@ ./wasm
	cp $(WASM_DIR)/wasm_exec.js $(BUILD)/wasm_exec.js

$(BUILD)/idleguard.wasm.br: $(BUILD)/idleguard.wasm
	$(GO) run ./server/cmd/precompress $(BUILD)/idleguard.wasm $(BUILD)/wasm_exec.js

# Two demo shops on one server: http://acme.localhost:8080 and
# http://globex.localhost:8080 (*.localhost is loopback in browsers and curl).
run: build
	./bin/idleguard -domain-suffix .localhost -demo -data ./data

# The same two shops as a cluster (server/cmd/idlecluster): redis-server on
# 6380, PostgreSQL in ./data/cluster on 5433, three nodes on 8081-8083 and
# nginx on 8080 in front of them, from Debian's packages (installed when
# root, else it stops with the command). Ctrl-C stops them all.
run-cluster: build
	$(GO) build -o bin/idlecluster ./server/cmd/idlecluster
	./bin/idlecluster -bin bin/idleguard -dir ./data/cluster

test: wasm chromium redis postgres test-go test-wasm

# Every package under the race detector but the Chromium tests (-short
# skips them: their timing is the product's, and the detector slows the
# server tenfold), then the Chromium tests on their own.
test-go: test-race test-e2e

test-race:
	$(GO) vet ./...
	$(GO) test -race -short -count=1 ./...

test-e2e:
	$(GO) test -count=1 ./server/e2e/

test-wasm:
	PATH="$(WASM_DIR):$$PATH" GOOS=js GOARCH=wasm $(GO) test -count=1 ./wasm/... ./server/protocol/...

# The browser tests need Debian's chromium: install it when root, else stop
# with the command that does.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "chromium is missing: run  sudo apt-get install -y chromium" >&2; exit 1; fi; }

# The live layer's tests start their own redis-server (server/internal/redistest):
# install Debian's redis-server when root, else stop with the command that does.
redis:
	@command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; \
	  else echo "redis-server is missing: run  sudo apt-get install -y redis-server  (or set IDLEGUARD_SKIP_REDIS=1 to skip its tests)" >&2; exit 1; fi; }

# The PostgreSQL store's tests start their own server (server/internal/pgtest):
# install Debian's postgresql when root, else stop with the command that does.
postgres:
	@[ "$${IDLEGUARD_SKIP_POSTGRES:-}" = 1 ] || ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || command -v postgres >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	  else echo "postgresql is missing: run  sudo apt-get install -y postgresql  (or set IDLEGUARD_SKIP_POSTGRES=1 to skip its tests)" >&2; exit 1; fi; }

FUZZTIME ?= 60s
fuzz:
	$(GO) test ./server/protocol -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)

# The load harness (docs/BENCHMARKS.md): the whole table in under 10 minutes.
# A quick run for development: make bench BENCHFLAGS=-quick
BENCHFLAGS ?=
bench: build
	$(GO) build -o bin/idleload ./server/cmd/idleload
	./bin/idleload -server-bin bin/idleguard $(BENCHFLAGS)

# The cluster table (docs/BENCHMARKS.md): 100,000 sockets on 6 nodes sharing
# one redis-server and one PostgreSQL from Debian's packages (installed when
# root, as make test does), then one node alone, in under 10 minutes.
bench-cluster: build redis postgres
	$(GO) build -o bin/idleload ./server/cmd/idleload
	./bin/idleload -server-bin bin/idleguard -cluster $(BENCHFLAGS)

clean:
	rm -rf bin $(BUILD)/idleguard.wasm* $(BUILD)/wasm_exec.js*
