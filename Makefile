# pop3svc: a POP3 mail service (POP3 + SMTP/LMTP delivery + admin) in one binary.
GO        ?= go
BIN       ?= bin
CONFIG    ?=
STATICCHECK_VERSION ?= v0.8.2
TEST_TIMEOUT ?= 15m
FUZZTIME  ?= 20s
# PAM (auth.method = "system") needs Linux-PAM's headers for cgo (Debian:
# libpam0g-dev). Without them everything builds with the "nopam" tag, and
# the system method says it is unavailable.
# GOFLAGS carries the tag to the builds that tests run themselves.
PAM_HEADER := /usr/include/security/pam_appl.h
ifeq ($(wildcard $(PAM_HEADER)),)
NOPAM := 1
export GOFLAGS := $(strip $(GOFLAGS) -tags=nopam)
endif

.PHONY: all build run test race check fmt vet staticcheck fuzz bench bench-compare bench-quick clean

all: build

build:
	@$(if $(NOPAM),echo "note: $(PAM_HEADER) not found (Debian: apt-get install libpam0g-dev); building without PAM",true)
	$(GO) build -o $(BIN)/ ./cmd/...

# The README's first command: the service on the embedded defaults (mail root
# under the working folder, POP3 on 127.0.0.1:1100, SMTP on 127.0.0.1:2525,
# admin/metrics on 127.0.0.1:8110). Pass CONFIG=file to use a config file.
run: build
	./$(BIN)/pop3d $(if $(CONFIG),-config $(CONFIG),)

# The README's second command, and what CI runs: every test, race detector on.
test: build
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

race:
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

check: fmt vet staticcheck

fmt:
	@out=$$(gofmt -l . ); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# Every fuzz target, FUZZTIME each.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# Go benchmarks of the hot paths (store, session, engine).
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./store/... ./session/... ./engine/...

# The side-by-side load run against Dovecot's POP3 server (as root; installs
# dovecot-pop3d when missing; about 5 minutes, bench-quick under 2).
BENCHFLAGS ?=
bench-compare:
	$(GO) run ./bench/cmd/pop3bench compare $(BENCHFLAGS)

bench-quick:
	$(GO) run ./bench/cmd/pop3bench compare -quick $(BENCHFLAGS)

clean:
	rm -rf $(BIN)
