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
APT_TEST  := passwd login tgt xorriso e2fsprogs iputils-ping iperf3
RUN_DIR   ?= $(CURDIR)/.corral
SOCKET    ?= $(if $(filter 0,$(shell id -u)),/run/corral/corral.sock,$(RUN_DIR)/corral.sock)

.PHONY: all build deps deps-test run test test-short fuzz bench vet clean

all: build

build: deps
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

test: deps-test vet build
	go test -v -count=1 -timeout 20m ./... 2>&1 | tee .test.log | grep -v -E '^\s*(=== (RUN|PAUSE|CONT|NAME)|--- PASS)' ; test $${PIPESTATUS[0]} -eq 0
	@scripts/skipped.sh .test.log
	$(MAKE) --no-print-directory fuzz

# Short fuzz runs over the API's JSON decoding and volume ID parsing (longer: FUZZTIME=5m).
FUZZTIME ?= 10s
fuzz:
	go test -run '^$$' -fuzz '^FuzzDecodeUserCreate$$' -fuzztime $(FUZZTIME) ./internal/server/
	go test -run '^$$' -fuzz '^FuzzParseVolID$$' -fuzztime $(FUZZTIME) ./internal/storage/

# The comparisons run the real alternatives: Debian's libvirt for virsh.
APT_BENCH := libvirt-daemon-system libvirt-clients tgt xorriso iperf3 iputils-ping
bench: build
	@scripts/apt-ensure.sh $(APT_BENCH)
	go run ./bench -out docs/benchmarks.md

clean:
	rm -rf bin .test.log
