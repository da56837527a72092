# pop3svc: a POP3 mail service (POP3 + SMTP/LMTP delivery + admin) in one binary.
SHELL     := /bin/bash
# Go 1.26.8's standard library has known vulnerabilities in symbols the
# service calls (net/http, html/template, crypto/tls; fixed in later
# releases). The go command fetches this toolchain from the module proxy on
# first use (about 80 MB, once per machine). GOTOOLCHAIN=local in the
# environment builds with the installed Go instead.
export GOTOOLCHAIN ?= go1.27.3
GO        ?= go
BIN       ?= bin
CONFIG    ?=
STATICCHECK_VERSION ?= v0.8.2
GOVULNCHECK_VERSION ?= v1.9.0
# The Go vulnerability database, as the module proxy serves it (the public
# database host is not reachable from every build machine).
VULNDB_VERSION ?= v0.0.0-20261105234957-e22db6528018
STRESS_RUNS ?= 5
# Per package: cmd/pop3d, the longest, took 681 s under -race in a clean CI
# run (910 tests, 780 s in all); on a machine shared with other builds it
# has taken 914 s.
TEST_TIMEOUT ?= 20m
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

# make deb: the Debian package (pop3d, pop3ctl, /etc/pop3d/pop3d.toml, the
# systemd unit, man pages) in dist/ or $(DEB_OUT); DEB_VERSION stamps the version.
DEB_OUT   ?= dist

.PHONY: deb all build run test test-cluster race stress check fmt vet staticcheck govulncheck fuzz bench bench-figures bench-compare bench-quick bench-cluster bench-cluster-quick clean

all: build

build:
	@$(if $(NOPAM),echo "note: $(PAM_HEADER) not found (Debian: apt-get install libpam0g-dev); building without PAM",true)
	$(GO) build -o $(BIN)/ ./cmd/...

# The README's first command: the service on the embedded defaults (mail root
# under the working folder, POP3 on 127.0.0.1:1100, SMTP on 127.0.0.1:2525,
# admin/metrics on 127.0.0.1:8110). Pass CONFIG=file to use a config file.
run: build
	./$(BIN)/pop3d -demo $(if $(CONFIG),-config $(CONFIG),)

# The README's second command, and what CI runs: every test, race detector on.
# .ci/testreport.py prints each package's result, the skipped tests and a
# closing count; with CI set, a skipped test fails the run (CI installs every
# tool the tests use, so a skip means a test did not run).
test: build
	$(GO) vet ./...
	set -o pipefail; $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) -json ./... | python3 .ci/testreport.py

# The whole suite STRESS_RUNS times while a parallel build loads every core:
# tests that depend on timing fail here first.
stress: build
	bash .ci/stress.sh $(STRESS_RUNS)

# The store on a real distributed file system: a GlusterFS replica-2 volume
# on this machine, mounted by two FUSE clients (as root; CI runs it too).
test-cluster: build
	GO=$(GO) bash .ci/test-cluster.sh

race:
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

check: fmt vet staticcheck govulncheck

fmt:
	@out=$$(gofmt -l . ); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# Fails on a known vulnerability in a symbol the project calls (modules and
# the standard library of the toolchain above).
govulncheck:
	@set -e; dir=$$($(GO) mod download -json golang.org/x/vulndb@$(VULNDB_VERSION) | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'); \
	  db=$$(mktemp -d); trap 'rm -rf $$db' EXIT; \
	  python3 .ci/vulndb.py $$dir/data/osv $$db; \
	  $(GO) run golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION) -db file://$$db ./...

# Every fuzz target, FUZZTIME each.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# Go benchmarks of the hot paths (store, session, engine).
bench:
	$(GO) test -run '^$$' -bench . -skip Figures -benchmem ./store/... ./session/... ./engine/...

# The figures benchmarks: thousands of connections, minutes each.
bench-figures:
	$(GO) test -run '^$$' -bench Figures -benchtime 1x -v ./engine/ ./session/smtp/ ./cmd/pop3d/

# The side-by-side load run against Dovecot's POP3 server (as root; installs
# dovecot-pop3d when missing; about 5 minutes, bench-quick under 2).
BENCHFLAGS ?=
bench-compare:
	$(GO) run ./bench/cmd/pop3bench compare $(BENCHFLAGS)

bench-quick:
	$(GO) run ./bench/cmd/pop3bench compare -quick $(BENCHFLAGS)

# Three test machines over one GlusterFS volume (a FUSE mount each) and then
# over local disk: SMTP and POP3 through all three while pop3d is killed
# with kill -9 at random moments, then SIGSTOP trials past the lease (as
# root; installs glusterfs-server and glusterfs-client when missing; about
# 20 minutes, bench-cluster-quick about 3). Not part of make test or CI:
# make test-cluster runs a small form.
bench-cluster:
	$(GO) run ./bench/cmd/pop3bench cluster $(BENCHFLAGS)

bench-cluster-quick:
	$(GO) run ./bench/cmd/pop3bench cluster -quick $(BENCHFLAGS)

deb:
	GO=$(GO) DEB_OUT=$(DEB_OUT) bash cmd/pop3d/debian/build.sh

clean:
	rm -rf $(BIN) dist
