# corral: two commands for a new user on Debian 12.
#   make run   installs what is missing, builds, starts a single-node corral on https://localhost:8006
#   make test  installs what the tests need and runs the whole suite
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
export GOFLAGS ?= -mod=mod

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X github.com/corral-project/corral/internal/daemon.Version=$(VERSION) -X github.com/corral-project/corral/internal/daemon.Commit=$(COMMIT) -X main.cliVersion=$(VERSION)

# Debian packages: build (cgo for PAM) and what the tests drive for real.
APT_BUILD := gcc libc6-dev libpam0g-dev pkg-config ca-certificates curl
APT_BUILD += xorriso qemu-system-x86 qemu-utils qemu-block-extra ovmf btrfs-progs
APT_BUILD += lxc uidmap busybox-static openssl xz-utils zstd debootstrap
APT_BUILD += dnsmasq-base iproute2
APT_TEST  := passwd login tgt xorriso e2fsprogs iputils-ping iperf3 chromium
RUN_DIR   ?= $(CURDIR)/.corral
SOCKET    ?= $(if $(filter 0,$(shell id -u)),/run/corral/corral.sock,$(RUN_DIR)/corral.sock)

.PHONY: all build deps deps-test run test test-short fuzz bench vet clean web web-deps web-api web-test

all: build

build: deps web
	go build -ldflags '$(LDFLAGS)' -o bin/corral ./cmd/corral

deps:
	@scripts/apt-ensure.sh $(APT_BUILD)
	@command -v go >/dev/null || { echo "Go 1.26 is required (/usr/local/go/bin/go)"; exit 1; }
	@go mod download

deps-test: deps
	@scripts/apt-ensure.sh $(APT_TEST)

run: build
	@scripts/run.sh "$(RUN_DIR)" "$(SOCKET)"

vet: deps
	go vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

test: deps-test vet build web-test
	go test -v -count=1 -timeout 20m ./... 2>&1 | tee .test.log | grep -v -E '^\s*(=== (RUN|PAUSE|CONT|NAME)|--- PASS)' ; test $${PIPESTATUS[0]} -eq 0
	@scripts/skipped.sh .test.log
	$(MAKE) --no-print-directory fuzz

# Short fuzz runs over the API's JSON decoding and volume ID parsing (longer: FUZZTIME=5m).
FUZZTIME ?= 10s
fuzz:
	go test -run '^$$' -fuzz '^FuzzDecodeUserCreate$$' -fuzztime $(FUZZTIME) ./internal/server/
	go test -run '^$$' -fuzz '^FuzzParseVolID$$' -fuzztime $(FUZZTIME) ./internal/storage/

# The comparisons run the real alternatives: Debian's libvirt for virsh.
APT_BENCH := libvirt-daemon-system libvirt-clients tgt xorriso iperf3 iputils-ping lxd lxd-client
bench: build
	@scripts/apt-ensure.sh $(APT_BENCH)
	go run ./bench -out docs/benchmarks.md

# The web UI (web/): npm ci against the committed lock, then Vite builds into
# internal/webui/dist, which the binary embeds. Skipped when nothing changed.
WEB_SRC := $(shell find web/src web/index.html web/package.json web/package-lock.json web/vite.config.ts -type f 2>/dev/null)
web: internal/webui/dist/index.html
internal/webui/dist/index.html: web/node_modules/.package-lock.json $(WEB_SRC)
	cd web && npm run build

web-deps: web/node_modules/.package-lock.json
web/node_modules/.package-lock.json: web/package-lock.json
	@command -v npm >/dev/null || scripts/apt-ensure.sh nodejs npm
	@node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a==20&&b>=19)?0:1)' || { echo "the web UI build needs Node.js >= 20.19 (have $$(node -v))"; exit 1; }
	cd web && npm ci --no-audit --no-fund

# Regenerate the UI's API types from the daemon's OpenAPI document.
web-api: web-deps
	go run internal/webui/openapi_gen.go > web/openapi.json.tmp && mv web/openapi.json.tmp web/openapi.json
	cd web && npm run gen:api

# Unit tests (Vitest); the end-to-end suite runs from test/web_e2e_test.go.
web-test: web-deps
	cd web && npm test

clean:
	rm -rf bin .test.log
