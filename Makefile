# tpmcard — the front door. `make demo` and `make test` set themselves up.

GO          ?= go
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -X main.version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Debian packages the build and the tests need: cgo and libcrypto for the
# in-process TPM simulator, swtpm for the software-TPM suite.
APT_PACKAGES := gcc libc6-dev libssl-dev swtpm swtpm-tools openssl opensc softhsm2
# The suites that need a TPM run on the simulator and on swtpm; in CI a
# missing swtpm fails instead of skipping.
TEST_ENV    := TPMCARD_REQUIRE_SWTPM=$(if $(CI),1,)

.PHONY: all setup build test lint bench demo fuzz clean

all: build

# setup is idempotent: it installs only what is missing.
setup:
	@command -v $(GO) >/dev/null || { echo "tpmcard: Go is not installed: get Go 1.25 or newer from https://go.dev/dl/" >&2; exit 1; }
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO=sudo; \
		else echo "tpmcard: please install:$$missing" >&2; exit 1; fi; \
		echo "installing:$$missing"; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	@$(GO) mod download

build: setup
	@mkdir -p bin
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/tpmcard ./cmd/tpmcard

lint: setup
	@fmt=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$fmt" ]; then echo "gofmt needed:" $$fmt >&2; exit 1; fi
	$(GO) vet ./...
	GOOS=windows CGO_ENABLED=0 $(GO) vet ./tpmcard/... ./service/... ./cmd/...
	GOOS=windows CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/tpmcard
	$(GO) run $(STATICCHECK) ./...

test: lint
	$(TEST_ENV) $(GO) test -count=1 ./...
	$(TEST_ENV) $(GO) test -count=1 -race ./tpmcard/... ./service/...
	$(GO) test -run '^$$' -fuzz FuzzReadFrame -fuzztime 200000x ./service/wire
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 200000x ./service/wire

# Signatures per second and p50/p99 latency through the card (PolicySecret +
# TPM2_Sign) against the floor of one bare TPM2_Sign on the same TPM.
bench: setup
	$(GO) test -run '^$$' -bench 'Sign' -benchtime 3s ./tpmcard/

demo: build
	./cmd/tpmcard/demo.sh bin/tpmcard

clean:
	rm -rf bin
