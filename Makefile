# satwatt: the two commands a newcomer needs are `make demo` and `make test`.

# Everything built or downloaded lives here; .gitignore ignores it, so a
# second run in the same clone is fast.
CACHE ?= $(CURDIR)/.cache
export SATWATT_CACHE := $(CACHE)
export GOCACHE := $(CACHE)/go-build
BIN := $(CURDIR)/bin
GO ?= go
# A benchmark that fails must fail make bench, also when piped into tee.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
# Tests that boot a VM or replay whole recordings need more than go test's
# default of 10 minutes on a 2-core machine.
TEST_TIMEOUT ?= 30m

.PHONY: all build test vet fmt-check fuzz bench demo vm-assets lnd-bins regtest clean

all: build

build:
	$(GO) build -o $(BIN)/ ./vehiclegw ./wallctl

vet:
	$(GO) vet ./...
	$(GO) vet -tags vcan ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# The kernel and CAN modules for the SocketCAN tests under qemu. Outside CI a
# failure here is not fatal: the VM test then skips and says what is missing.
vm-assets:
	bash scripts/vm-assets.sh $(CACHE)

# lnd, lncli, btcd and btcctl at go.mod's versions, for the regtest tests and
# the demo: about 4 min cold, instant when up to date.
lnd-bins:
	bash scripts/lnd-bins.sh $(CACHE)

# A regtest network for manual work: btcd, the wall's and the car's lnd and a
# car->wall channel; it prints lncli command lines and stays up until Ctrl-C.
# make regtest REGTEST_FLAGS="-capacity 2000000 -push 100000"
regtest: lnd-bins
	$(GO) run ./internal/regtest/cmd/satwatt-regtest $(REGTEST_FLAGS)

# The slow one-off builds run here, visibly and outside go test's timeout.
# Outside CI a failure is not fatal: the tests that need them skip and say so.
test: fmt-check vet
	@bash scripts/vm-assets.sh $(CACHE) || { [ "$$CI" != true ] && echo "vm-assets failed: the SocketCAN tests will skip (outside CI)"; }
	@bash scripts/lnd-bins.sh $(CACHE) || { [ "$$CI" != true ] && echo "lnd-bins failed: the regtest tests will skip (outside CI)"; }
	SATWATT_TEST_OUTPUT=$(CACHE)/test-output $(GO) test -timeout $(TEST_TIMEOUT) ./...
	bash scripts/fuzz.sh $(FUZZ_SHORT) $(CACHE)/fuzz-short

# Every fuzz target in turn, FUZZ_TIME each: make test runs them briefly
# (FUZZ_SHORT), this runs them long. A failing input is written under its
# package's testdata/fuzz/ and from then on plain go test replays it.
# make fuzz FUZZ_TIME=1h FUZZ_ONLY=FuzzParseResponse
FUZZ_SHORT ?= 10s
FUZZ_TIME ?= 5m
FUZZ_ONLY ?= .
fuzz:
	bash scripts/fuzz.sh $(FUZZ_TIME) $(CACHE)/fuzz '$(FUZZ_ONLY)'

# Benchmarks print figures (and ratios to a baseline measured in the same
# run); they assert nothing. Three groups, each run as often as its cost
# allows: the quick ones BENCH_COUNT times; the history ones (a million
# sessions to seed, once per test binary) three times, one op each; the
# whole-product ones in the table once, each repeating its own measurement
# and reporting medians. Then one table of every figure against its
# baseline and target. Each group names only the packages that hold its
# benchmarks, so that go test does not link the rest's test binaries for
# nothing (a minute on a clean clone); a benchmark in a package not named
# here leaves its table row without a figure, which the table reports.
# BenchmarkSystemPaymentSteps (internal/carpay) splits the payment loop
# into its steps, and BenchmarkHistory (internal/wallstore) times the
# store's queries alone, for profiling; they are not in the table, so run
# them by hand.
BENCH_COUNT ?= 3
BENCH_TIME ?= 500ms
BENCH_OUT = $(CACHE)/bench
BENCH_QUICK_PKGS = ./dbc ./internal/canbus ./internal/canlog ./internal/demo ./internal/rapi ./internal/sdp \
	./internal/wallclient ./internal/wallstore ./vehiclegw ./wallctl/internal/httpapi
bench: lnd-bins
	@mkdir -p $(BENCH_OUT)
	$(GO) test -run '^$$' -bench '^Benchmark([^SH]|S[^y]|H[^i])' -benchmem -benchtime $(BENCH_TIME) -count $(BENCH_COUNT) $(BENCH_QUICK_PKGS) | tee $(BENCH_OUT)/quick.txt
	$(GO) test -run '^$$' -bench '^BenchmarkHistoryCommand$$' -benchtime 1x -count 3 -timeout 30m ./wallctl | tee $(BENCH_OUT)/history.txt
	$(GO) test -run '^$$' -bench '^BenchmarkSystem(TimeToEnergy|PaymentLoop|WallCapacity)$$' -benchtime 1x -count 1 -timeout 30m ./internal/demo ./wallctl | tee $(BENCH_OUT)/system.txt
	@echo
	$(GO) run ./internal/benchtable/cmd/satwatt-benchtable $(BENCH_OUT)/quick.txt $(BENCH_OUT)/history.txt $(BENCH_OUT)/system.txt | tee $(BENCH_OUT)/table.txt

# One charging session end to end: regtest Lightning, the simulated car and
# EVSE, wallctl and vehiclegw (see the README). Ctrl-C stops everything.
# make demo DEMO_FLAGS="--profile tesla-model3"
demo: build lnd-bins
	$(GO) build -o $(BIN)/ ./internal/demo/cmd/satwatt-demo
	$(BIN)/satwatt-demo --bin $(BIN) --cache $(CACHE) $(DEMO_FLAGS)

clean:
	rm -rf $(BIN)
