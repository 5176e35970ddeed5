# tpmcard — the front door. `make demo` and `make test` set themselves up.

GO          ?= go
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -X main.version=$(VERSION)
# The Go release go.mod requires (its "go" line), for the setup message.
GO_VERSION  := $(shell sed -n 's/^go \([0-9]*\.[0-9]*\).*/\1/p' go.mod)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Debian packages the build and the tests need: cgo and libcrypto for the
# in-process TPM simulator, swtpm for the software-TPM suite, p11-kit's
# PKCS#11 header for the module, and the real PKCS#11 consumers the tests
# drive (OpenSC, GnuTLS, OpenSSL's engine, OpenSSH, SoftHSM2), and mingw-w64
# to cross-build the module as a Windows DLL; clang for libFuzzer, which
# fuzzes the C module's decoder and frame reader (pkcs11shim/c); valgrind
# runs pkcs11-tool --test against the module; Java's SunPKCS11 (the JDK:
# `java File.java` needs jdk.compiler) and NSS's certutil and modutil are
# consumers of the module too, and so is MIT krb5's kinit with PKINIT against
# a throwaway KDC (krb5kdc, kdb5_util and kadmin.local make the realm).
# The PIV card is tested in a private pcscd with vsmartcard's vpcd driver,
# through OpenSC and yubico-piv-tool (service/piv/pcsctest).
APT_PACKAGES := gcc libc6-dev pkg-config libssl-dev swtpm swtpm-tools openssl \
	libp11-kit-dev p11-kit opensc gnutls-bin libengine-pkcs11-openssl softhsm2 \
	openssh-client openssh-server gcc-mingw-w64-x86-64 binutils-mingw-w64-x86-64 \
	clang valgrind openjdk-17-jdk-headless libnss3-tools \
	krb5-user krb5-kdc krb5-admin-server krb5-pkinit \
	pcscd vsmartcard-vpcd yubico-piv-tool
# The suites that need a TPM run on the simulator and on swtpm; in CI a
# missing swtpm, or a missing tool of the module tests, fails instead of skipping.
TEST_ENV    := TPMCARD_REQUIRE_SWTPM=$(if $(CI),1,) TPMCARD_REQUIRE_TOOLS=$(if $(CI),1,)
# libFuzzer iterations per C target (pkcs11shim/c/test/fuzz_*.c) in make test.
CFUZZ_RUNS  ?= 300000

MODULE      := bin/libtpmcard-pkcs11.so
ASAN_MODULE := bin/asan/libtpmcard-pkcs11.so
DLL         := bin/tpmcard-pkcs11.dll
# The PKCS#11 module: C11, no runtime, only the C_* entry points exported.
MODULE_DIR  := pkcs11shim/c
MODULE_SRC  := $(addprefix $(MODULE_DIR)/,p11.c p11_objects.c p11_stubs.c p11_log.c tc_conn.c tc_cbor.c)
MODULE_DEPS := $(MODULE_SRC) $(wildcard $(MODULE_DIR)/*.h) $(MODULE_DIR)/exports.map
MODULE_CFLAGS = -std=c11 -Wall -Wextra -Werror -fPIC $$(pkg-config --cflags p11-kit-1)
MODULE_LDFLAGS := -shared -pthread -Wl,--version-script=$(MODULE_DIR)/exports.map -Wl,-z,defs \
	-Wl,-z,relro,-z,now
# The Windows DLL (Windows 10 1803 and later, for AF_UNIX): the same
# sources with mingw-w64 and p11-kit's header (which packs the PKCS#11
# structures for _WIN32); the .def file exports only the C_* entry points;
# Winsock and the C runtime are Windows's own DLLs, libgcc is linked in.
WINDOWS_CC  ?= x86_64-w64-mingw32-gcc
DLL_DEF     := $(MODULE_DIR)/tpmcard-pkcs11.def
DLL_CFLAGS   = -std=c11 -O2 -Wall -Wextra -Werror -D_WIN32_WINNT=0x0A00 $$(pkg-config --cflags p11-kit-1)
DLL_LDFLAGS := -shared -s -static-libgcc -lws2_32

.PHONY: all setup build module module-asan dll install test lint bench demo clean

all: build

# setup is idempotent: it installs only what is missing.
setup:
	@command -v $(GO) >/dev/null || { echo "tpmcard: Go is not installed: get Go $(GO_VERSION) or newer from https://go.dev/dl/" >&2; exit 1; }
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
	@$(MAKE) --no-print-directory module

# module builds the PKCS#11 module; module-asan the same sources with
# AddressSanitizer and UndefinedBehaviorSanitizer, for the tests.
module: $(MODULE)
module-asan: $(ASAN_MODULE)

$(MODULE): $(MODULE_DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(MODULE_CFLAGS) -O2 -fstack-protector-strong -D_FORTIFY_SOURCE=2 -o $@ $(MODULE_SRC) $(MODULE_LDFLAGS)

$(ASAN_MODULE): $(MODULE_DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(MODULE_CFLAGS) -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
		-fno-sanitize-recover=undefined -o $@ $(MODULE_SRC) $(MODULE_LDFLAGS)

# dll cross-builds the module for 64-bit Windows.
dll: $(DLL)

$(DLL): $(MODULE_DEPS) $(DLL_DEF)
	@mkdir -p $(dir $@)
	$(WINDOWS_CC) $(DLL_CFLAGS) -o $@ $(MODULE_SRC) $(DLL_DEF) $(DLL_LDFLAGS)

# install puts the CLI in /usr/local/bin and the module where p11-kit finds
# it, so p11-kit-aware programs see the card without configuration.
install: build
	install -m 0755 bin/tpmcard $(DESTDIR)/usr/local/bin/tpmcard
	install -d $(DESTDIR)$$(pkg-config --variable=p11_module_path p11-kit-1)
	install -m 0644 $(MODULE) $(DESTDIR)$$(pkg-config --variable=p11_module_path p11-kit-1)/libtpmcard-pkcs11.so
	install -d $(DESTDIR)$$(pkg-config --variable=p11_module_configs p11-kit-1)
	install -m 0644 pkcs11shim/p11-kit/tpmcard.module $(DESTDIR)$$(pkg-config --variable=p11_module_configs p11-kit-1)/tpmcard.module

lint: setup
	@fmt=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$fmt" ]; then echo "gofmt needed:" $$fmt >&2; exit 1; fi
	$(GO) vet ./...
	GOOS=windows CGO_ENABLED=0 $(GO) vet ./tpmcard/... ./service/... ./cmd/... ./pkcs11shim/...
	GOOS=windows CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/tpmcard
	$(GO) run $(STATICCHECK) ./...

# The module tests (pkcs11shim/moduletest) run the modules built here; the
# race detector has nothing to find in them or in the C tests, which drive
# other processes.
MODULE_ENV = TPMCARD_PKCS11_MODULE=$(abspath $(MODULE)) TPMCARD_PKCS11_ASAN_MODULE=$(abspath $(ASAN_MODULE)) \
	TPMCARD_PKCS11_DLL=$(abspath $(DLL))

test: lint module module-asan dll
	$(TEST_ENV) $(MODULE_ENV) $(GO) test -count=1 ./...
	$(TEST_ENV) $(GO) test -count=1 -race ./tpmcard/... ./service/...
	$(GO) test -run '^$$' -fuzz FuzzReadFrame -fuzztime 200000x ./service/wire
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 200000x ./service/wire
	TPMCARD_CFUZZ_RUNS=$(CFUZZ_RUNS) $(GO) test -count=1 -run '^TestLibFuzzer$$' ./pkcs11shim/c/ctest

# Signatures per second and p50/p99 latency through the card (PolicySecret +
# TPM2_Sign) against the floor of one bare TPM2_Sign on the same TPM, then
# through the service and the PKCS#11 module (beside SoftHSM2), and 10,000
# forked children calling the module; and the PIV card through OpenSC's
# module and PC/SC against the native module, same card and TPM (root).
bench: setup module
	$(GO) test -run '^$$' -bench 'Sign' -benchtime 3s ./tpmcard/
	$(GO) test -run '^$$' -bench 'Service' -benchtime 3s ./cmd/tpmcard/
	$(MODULE_ENV) $(GO) test -run '^$$' -bench 'Sign' -benchtime 2000x ./pkcs11shim/moduletest/
	$(MODULE_ENV) $(GO) test -run '^$$' -bench 'Fork' -benchtime 10000x ./pkcs11shim/moduletest/
	$(MODULE_ENV) $(GO) test -run '^$$' -bench 'PIVSign' -benchtime 2000x ./service/piv/pcsctest/

demo: build
	./cmd/tpmcard/demo.sh bin/tpmcard

clean:
	rm -rf bin
