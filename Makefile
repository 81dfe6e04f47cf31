# tlsready — see README.md. `make demo` and `make test` are all a fresh clone needs.
GO        ?= go
BIN       := bin/tlsready
VERSION   := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
FUZZTIME  ?= 200000x
DEMO_DIR  ?= demo-out

.PHONY: all build demo test deps vet fuzz bench bench-scan bench-cpu bench-national bench-gateway bench-report bench-scale clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/tlsready

# The main job on the built-in simulated internet: scan, summary, HTML report.
demo: build
	./$(BIN) demo --dir $(DEMO_DIR)

# Debian packages the real-client tests need: Chromium (HTML report, with a
# Japanese font for the screenshots) and Postfix's postmap (socketmap, and
# the static policy map as texthash, hash and lmdb: postfix-lmdb); the
# interop lab (cmd/tlsready TestInteropRealServers) also needs Postfix, NSD,
# Unbound, nginx and ldns-keygen/ldns-signzone; the PostgreSQL backend's
# tests (store/pgtest) start a private cluster with PostgreSQL's initdb and pg_ctl.
# Installed when missing and we are root.
deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	test -x /usr/sbin/postmap || missing="$$missing postfix"; \
	dpkg -s postfix-lmdb >/dev/null 2>&1 || missing="$$missing postfix-lmdb"; \
	dpkg -s fonts-ipafont-gothic >/dev/null 2>&1 || missing="$$missing fonts-ipafont-gothic"; \
	test -x /usr/sbin/unbound || missing="$$missing unbound"; \
	test -x /usr/sbin/nsd || missing="$$missing nsd"; \
	test -x /usr/sbin/nginx || missing="$$missing nginx-light"; \
	command -v ldns-signzone >/dev/null 2>&1 || missing="$$missing ldnsutils"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
	    guard=""; if [ ! -e /usr/sbin/policy-rc.d ]; then \
	      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; guard=1; fi; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	    status=$$?; [ -n "$$guard" ] && rm -f /usr/sbin/policy-rc.d; [ $$status = 0 ] || exit $$status; \
	  else echo "warning: missing$$missing (not root: tests that need them are skipped outside CI)"; fi; \
	fi
	@# sendmail's makemap and sendmail -bt, and Exim's exim -be, for the
	@# export policy tests. Their packages conflict with postfix (each is a
	@# mail-transport-agent), so they are unpacked under .deps/mta, not
	@# installed; their libraries are installed, and Exim's run-time user
	@# Debian-exim is created as exim4-base would.
	@if [ ! -x .deps/mta/usr/libexec/sendmail/makemap ] || [ ! -x .deps/mta/usr/sbin/exim4 ] || \
	    [ ! -f .deps/mta/usr/share/sendmail/cf/m4/cf.m4 ] || ! command -v m4 >/dev/null 2>&1 || \
	    ! getent passwd Debian-exim >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "unpacking sendmail-bin, sendmail-cf and exim4-daemon-light into .deps/mta"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq m4 libidn12 libwrap0 libdb5.3 libldap-2.5-0 liblockfile1 libnsl2 libsasl2-2 >/dev/null && \
	    { getent passwd Debian-exim >/dev/null || useradd --system --user-group --no-create-home \
	        --home-dir /var/spool/exim4 --shell /usr/sbin/nologin Debian-exim; } && \
	    rm -rf .deps/debs && mkdir -p .deps/debs .deps/mta && \
	    (cd .deps/debs && apt-get download -qq sendmail-bin sendmail-cf exim4-daemon-light) && \
	    for f in .deps/debs/*.deb; do dpkg-deb -x $$f .deps/mta || exit 1; done; \
	  else echo "warning: sendmail/exim binaries missing under .deps/mta (not root: the sendmail and exim export tests are skipped outside CI)"; fi; \
	fi

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || (echo "gofmt: files above need formatting"; exit 1)

test: deps vet
	$(GO) test -race -timeout 20m ./...

# Every fuzz target for a while (FUZZTIME each); findings land in
# testdata/fuzz and become regression tests. FUZZTIME is a count of
# executions ("Nx"), not a duration: Go 1.26's fuzz coordinator can report a
# spurious "context deadline exceeded" when a duration runs out
# (go.dev/issue/75804, fixed in Go 1.27).
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
	    echo "fuzz $$pkg $$t"; \
	    $(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) $$pkg; \
	  done; \
	done

bench: bench-scan bench-cpu bench-gateway bench-report
	$(GO) test -run='^$$' -bench=. -benchmem -timeout 30m ./scanner/... ./store/...

# End-to-end scan: 1,000,000 addresses over 100,000 domains on the simulated
# internet in a child process (sizes: TLSREADY_BENCH_DOMAINS, _ADDRESSES,
# _RTT, _CONCURRENCY): the rate at RTT 50 ms against the critical-path bound,
# then the CPU per distinct MX IP without latency.
bench-scan:
	$(GO) test -run '^$$' -bench 'BenchmarkScan(Latency|CPUPerIP)$$' -benchtime 1x -timeout 60m ./cmd/tlsready

# Scanner CPU per domain (issue 10): 20,000 domains each with its own MX IP
# (self-signed ECDSA P-256, TLS 1.3), concurrency 1000, no rate limit, split
# by phase; then 2,000 such domains at --rate 20 against 2,000 unlimited
# (TLSREADY_BENCH_RATE_DOMAINS). About four minutes.
bench-cpu:
	$(GO) test -run '^$$' -bench '^BenchmarkScanCPU$$' -benchtime 1x -timeout 60m ./cmd/tlsready

# National scale, end to end (issue 6): 10,000,000 addresses over 1,000,000
# domains at 50 ms RTT: ingestion, scan, report. Takes a quarter of an hour.
bench-national:
	TLSREADY_BENCH_DOMAINS=1000000 TLSREADY_BENCH_ADDRESSES=10000000 TLSREADY_BENCH_REPORT=1 \
	  $(GO) test -run '^$$' -bench 'BenchmarkScanLatency' -benchtime 1x -timeout 120m ./cmd/tlsready

# Gateway lookups on 1,000,000 domains over HTTP keep-alive and the socketmap
# while a second process writes 2,000 results/s as a scan does; load
# generator in a third process, 3 runs at capacity and at 20,000 lookups/s.
bench-gateway:
	$(GO) run ./cmd/gateway-bench -domains 1000000 -duration 10s -conns 8

# Several scan workers on one PostgreSQL run (issue 13): the 100k-domain
# world at RTT 50 ms with 1, 2 and 3 worker processes (--concurrency 100
# each: latency-bound), domains/s against the
# critical-path bound at their combined concurrency and connections per MX
# IP; then bench-gateway's measurement on 100,000 domains against PostgreSQL
# and SQLite (serve answers from memory either way). Needs PostgreSQL's
# binaries (make deps); takes about ten minutes.
bench-scale:
	$(GO) test -run '^$$' -bench '^BenchmarkScanScale$$' -benchtime 1x -timeout 90m ./cmd/tlsready

# Report generation for 1,000,000 domains / 10,000,000 citizens, scan-shaped
# results (the first run builds and caches the database under /tmp: a few
# minutes, 6 GB).
bench-report:
	$(GO) test ./report -run '^$$' -bench BenchmarkReport1M -benchtime 1x -timeout 30m

clean:
	rm -rf bin $(DEMO_DIR)
