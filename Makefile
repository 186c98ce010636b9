# pgbb: a durable completion status for pg_basebackup, and the Go harness
# that proves it. `make help` lists the targets.

# Go lives in /usr/local/go/bin on the project's machines.
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go

PG      ?= 18
VARIANT ?= patched
BACKEND ?= auto
export BACKEND

# The integration tests build PostgreSQL 18 and 15 and run TAP suites.
INTEGRATION_TIMEOUT ?= 80m

# `make` installs pgbb-status and pgbb-run into BINDIR; `make test` fuzzes its parser.
BINDIR   ?= $(CURDIR)/bin
# The fuzzers run a number of executions, about 20 s each on an idle
# 2-core machine: a duration (FUZZTIME=20s) races Go's fuzz coordinator's
# deadline, which go1.26 reports as a failure ("context deadline
# exceeded", go.dev/issue/75804) when a loaded worker is mid-call.
# FUZZTIME, if given, is used for both instead.
FUZZ_PARSE_EXECS ?= 400000x
FUZZ_REMOVE_EXECS ?= 2500x

.DEFAULT_GOAL := install

.PHONY: help install build test vet unit fuzz integration taskflow test-knownbad knownbad-default bench-build bench-overhead bench-overhead-long bench-powerfs bench-crash bench-powerloss bench-knownbad crash crash-merge explore compare clean

help: ## list the targets
	@echo "pgbb: durable completion status for pg_basebackup, with a Go harness"
	@echo
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | awk -F'\t' '{ printf "  make %-15s %s\n", $$1, $$2 }'
	@echo
	@echo "Variables: PG=18|15 (build), VARIANT=patched|stock (build; make crash also VARIANT=wrapper: stock under pgbb-run),"
	@echo "           BACKEND=auto|container|native,"
	@echo "           PGSRC=path (own source tree or tarball), PGBB_CACHE=dir, BASE_IMAGE=image"

install: ## install the status reader pgbb-status and the stock pg_basebackup wrapper pgbb-run into BINDIR (default ./bin); the default target
	GOBIN=$(BINDIR) $(GO) install ./harness/cmd/pgbb-status ./harness/cmd/pgbb-run
	@echo "installed $(BINDIR)/pgbb-status and $(BINDIR)/pgbb-run"

build: ## build PostgreSQL (PG=18|15, VARIANT=patched|stock, BACKEND=auto) and print where it is
	$(GO) run ./harness/cmd/pgbb-build -pg $(PG) -variant $(VARIANT) -backend $(BACKEND)

test: vet unit fuzz integration ## go vet, unit tests, fuzzing, then the integration tests (below)

vet:
	$(GO) vet ./...

unit: ## fast unit tests only (what `go test ./...` runs)
	$(GO) test -count=1 ./...

fuzz: ## fuzz the status file parser (FuzzParse, FUZZ_PARSE_EXECS executions, 400000x), then --remove-if-dead over generated trees (FuzzRemoveIfDead, FUZZ_REMOVE_EXECS, 2500x); FUZZTIME=D for both instead
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(or $(FUZZTIME),$(FUZZ_PARSE_EXECS)) -fuzzminimizetime 10s ./harness/status
	$(GO) test -run '^$$' -fuzz '^FuzzRemoveIfDead$$' -fuzztime $(or $(FUZZTIME),$(FUZZ_REMOVE_EXECS)) -fuzzminimizetime 10s ./harness/status

integration: ## real builds (broken/trivial patch, 18 and 15 patched), upstream TAP suites, short crash campaigns (both backends), the known-bad variants, the short task flow
	PGBB_INTEGRATION=1 $(GO) test -p 1 -count=1 -v -timeout $(INTEGRATION_TIMEOUT) -run 'TestRealTree|TestIntegration' ./harness/...

test-knownbad: ## build each known-bad variant of the patch, and of pgbb-run (wrapper/NAME, on the wrapper's default campaign), and assert its campaign finds a violation (KNOWNBAD=a,wrapper/b for some)
	PGBB_INTEGRATION=1 PGBB_KNOWNBAD=$(KNOWNBAD) $(GO) test -count=1 -v -timeout 90m -run 'TestIntegrationKnownBad' ./harness/campaign

knownbad-default: ## every known-bad variant against the default campaign (scenarios/smoke; pgbb-run's: scenarios/smoke and scenarios/wrapper) instead of its own scenario, until its first violation (KNOWNBAD=a,b for some)
	PGBB_INTEGRATION=1 PGBB_KNOWNBAD=$(KNOWNBAD) PGBB_KNOWNBAD_SCENARIOS=$(or $(SCENARIOS),scenarios/smoke) $(GO) test -count=1 -v -timeout 180m -run 'TestIntegrationKnownBad' ./harness/campaign

bench-build: ## cold and warm build times per backend (removes the project's images first)
	PGBB_BENCH=1 $(GO) test -count=1 -run '^$$' -bench BenchmarkBuild -benchtime 1x -timeout 90m ./harness/build

bench-overhead: ## what the status file costs: stock vs patched 18.6 pg_basebackup of a ~300 MB cluster, interleaved
	$(GO) test -count=1 -run '^$$' -bench BenchmarkStatusFileOverhead -benchtime 1x -timeout 60m ./harness/overhead

bench-overhead-long: ## the same on runs of a minute: ~1.5 GB throttled to 24 MB/s (PGBB_OVERHEAD_RATE), 5 runs each, and the status file's fsyncs per minute
	PGBB_OVERHEAD_MODE=long $(GO) test -count=1 -run '^$$' -bench BenchmarkStatusFileOverhead -benchtime 1x -timeout 90m ./harness/overhead

bench-powerfs: ## power-loss cycles per minute of the powerfs layer (mount, write+sync ~10 MB, power loss, materialise; root, /dev/fuse)
	$(GO) test -count=1 -run '^$$' -bench 'Cycle$$' -benchtime 20x ./harness/powerfs

# `make crash`: SCENARIOS (files or directories, comma-separated; with
# VARIANT=wrapper, scenarios/wrapper too by default), PATCHES (a patch
# series directory, default patches/pg$(PG)), CRASH_FLAGS (more pgbb-crash
# flags, e.g. -parallel 1 -seed 42 -keep). VARIANT=wrapper runs the stock
# build's pg_basebackup under pgbb-run and judges its status file.
SCENARIOS ?= scenarios/smoke$(if $(filter wrapper,$(VARIANT)),$(comma)scenarios/wrapper)
comma := ,
PATCHES   ?=
CRASH_FLAGS ?=

# pgbb-crash is built and run directly, not with `go run`, which turns
# every non-zero exit into 1: its exit code says 1 (violations) or 2 (the
# campaign could not run). make itself exits 2 for any failing recipe, so
# `make crash` cannot tell the two apart: with CRASH_EXIT_FILE set, the
# recipe writes pgbb-crash's exit code into that file, and .ci/crash, which
# sets it, exits with that code (2 when pgbb-crash never ran).
CRASH_BIN = $(or $(PGBB_CACHE),.cache)/bin/pgbb-crash
CRASH_EXIT_FILE ?=

# pass_exit ends a recipe line that ran pgbb-crash: it saves the exit code
# into CRASH_EXIT_FILE (when set) and exits with it.
pass_exit = code=$$?; $(if $(CRASH_EXIT_FILE),echo $$code >'$(CRASH_EXIT_FILE)';) exit $$code

# After a campaign that ran, `make crash` also runs the explorer (make
# explore, below) on the patched build, unless EXPLORE_AFTER_CRASH=0: the
# power-loss scenarios' calibration runs, every crash state of their
# finishing part. Its exit code counts like pgbb-crash's (the larger wins).
EXPLORE_AFTER_CRASH ?= 1

# `make crash` runs natively unless BACKEND names a backend: the explorer
# that follows uses the native build (its power-loss layer is FUSE on the
# host), so campaign and explorer share one build, at the native rate.
# BACKEND=container runs the campaign in a container (a second build when
# the explorer follows), with the same reader invariants (another OS user,
# another PID namespace, the reader's time zone).
CRASH_BACKEND = $(if $(filter auto,$(BACKEND)),native,$(BACKEND))

crash: ## the crash campaign on patched 18, natively unless BACKEND=container (PG=, VARIANT=stock|wrapper, PATCHES=dir, SCENARIOS=), then the explorer (EXPLORE_AFTER_CRASH=0: not); make exits 2 on any failure, .ci/crash 1 on invariant violations and 2 when it could not run
	$(GO) build -o $(CRASH_BIN) ./harness/cmd/pgbb-crash
	$(GO) build -o $(EXPLORE_BIN) ./harness/cmd/pgbb-explore
	$(CRASH_BIN) -pg $(PG) -variant $(VARIANT) $(if $(PATCHES),-patches $(PATCHES)) -scenarios $(SCENARIOS) -backend $(CRASH_BACKEND) $(CRASH_FLAGS); \
	code=$$?; \
	if [ $$code -le 1 ] && [ "$(EXPLORE_AFTER_CRASH)" = 1 ] && [ "$(VARIANT)" = patched ]; then \
		$(EXPLORE_BIN) -pg $(PG) -variant $(VARIANT) $(if $(PATCHES),-patches $(PATCHES)) -scenarios $(EXPLORE_SCENARIOS) $(EXPLORE_FLAGS); \
		e=$$?; if [ $$e -gt $$code ]; then code=$$e; fi; \
	fi; \
	(exit $$code); $(pass_exit)

# `make crash-merge`: MERGE (the run directories of every shard of one
# campaign, run with CRASH_FLAGS='-seed N -shard i/n', comma-separated)
# into MERGE_OUT (default .cache/crash/<time>-<pg>-<variant>-merged); exit
# codes as make crash's (.ci/crash crash-merge passes them on).
MERGE     ?=
MERGE_OUT ?=

crash-merge: ## merge the run directories of a sharded campaign (MERGE=dir,dir,..., MERGE_OUT=dir): one run's summary and reports
	$(GO) build -o $(CRASH_BIN) ./harness/cmd/pgbb-crash
	$(CRASH_BIN) -merge '$(MERGE)' $(if $(MERGE_OUT),-out '$(MERGE_OUT)'); $(pass_exit)

# `make explore`: EXPLORE_SCENARIOS (a clean run each on the power-loss
# layer, then every crash state of its finishing part), PATCHES as for
# crash, EXPLORE_FLAGS (e.g. -k 6 -ksweep 1-6 -scale 5 -oracle 4).
EXPLORE_SCENARIOS ?= scenarios/smoke/powerloss.json,scenarios/power/tar-powerloss.json,scenarios/smoke/nosync-powerloss.json
EXPLORE_FLAGS ?=
EXPLORE_BIN = $(or $(PGBB_CACHE),.cache)/bin/pgbb-explore

explore: ## every crash state of the finishing part of one clean run per scenario (PG=18, PATCHES=, EXPLORE_FLAGS=); exit 1 on a violation (root, /dev/fuse)
	$(GO) build -o $(EXPLORE_BIN) ./harness/cmd/pgbb-explore
	$(EXPLORE_BIN) -pg $(PG) -variant $(VARIANT) $(if $(PATCHES),-patches $(PATCHES)) -scenarios $(EXPLORE_SCENARIOS) $(EXPLORE_FLAGS)

# `make compare`: the same scenarios (and CRASH_FLAGS) on each build of
# COMPARE_RUNS (PG-VARIANT, default stock 18, stock 18 under pgbb-run and
# patched 18; add 15-stock for the older release), with one seed (a -seed
# in CRASH_FLAGS wins), natively unless BACKEND names a backend (the
# wrapper runs natively only), into COMPARE_DIR/<run>, then
# `pgbb-crash -compare` over them. The scenarios are SCENARIOS when given,
# else scenarios/smoke and scenarios/wrapper for every build, so that each
# column counts the same trials. A campaign that found violations (1) does
# not stop the others, one that could not run (2) does. The recipe fails
# after the comparison when any campaign found violations.
COMPARE_DIR ?= $(or $(PGBB_CACHE),.cache)/crash/compare-$$(date -u +%Y%m%d-%H%M%S)
COMPARE_RUNS ?= 18-stock 18-wrapper 18-patched
COMPARE_SCENARIOS = $(if $(filter file,$(origin SCENARIOS)),scenarios/smoke$(comma)scenarios/wrapper,$(SCENARIOS))

compare: ## stock 18, stock 18 under pgbb-run and patched 18 (COMPARE_RUNS=) on the same scenarios, then how each operator signal did per build and fault plan, and what the runs left alive, side by side
	@set -u; dir=$(COMPARE_DIR); bin=$(CRASH_BIN); \
	seed=$$(( $$(date +%s) % 1000000007 )); worst=0; dirs=; \
	case "$(CRASH_BACKEND) $(COMPARE_RUNS) " in container*-wrapper\ *) \
		echo "make compare: the wrapper runs natively only: leave its runs out of COMPARE_RUNS with BACKEND=container" >&2; exit 2;; esac; \
	$(GO) build -o $$bin ./harness/cmd/pgbb-crash || exit 2; \
	for run in $(COMPARE_RUNS); do \
		echo "make compare: $$run, scenarios $(COMPARE_SCENARIOS): $$dir/$$run"; \
		$$bin -pg $${run%%-*} -variant $${run#*-} -scenarios $(COMPARE_SCENARIOS) -backend $(CRASH_BACKEND) -seed $$seed $(CRASH_FLAGS) -out $$dir/$$run; \
		rc=$$?; \
		if [ $$rc -gt 1 ]; then echo "make compare: the $$run campaign could not run (exit $$rc); stopping" >&2; exit $$rc; fi; \
		if [ $$rc -eq 1 ]; then worst=1; echo "make compare: the $$run campaign found invariant violations; going on" >&2; fi; \
		dirs=$${dirs:+$$dirs,}$$dir/$$run; \
	done; \
	$$bin -compare $$dirs -out $$dir || exit $$?; \
	exit $$worst

# `make taskflow`: TASKFLOW_SCENARIOS (files or directories of
# scenarios/taskflow, comma-separated), TASKFLOW_FLAGS (e.g. -out DIR).
TASKFLOW_SCENARIOS ?= scenarios/taskflow/seed.json
TASKFLOW_FLAGS ?=
TASKFLOW_BIN = $(or $(PGBB_CACHE),.cache)/bin/pgbb-taskflow

taskflow: ## the seed's task flow: attempts with a deadline shorter than the backup, stock 18, stock 18 under pgbb-run and patched 18 side by side (TASKFLOW_SCENARIOS=); exit 1 on a broken promise
	$(GO) build -o $(TASKFLOW_BIN) ./harness/cmd/pgbb-taskflow
	$(TASKFLOW_BIN) -scenarios $(TASKFLOW_SCENARIOS) $(TASKFLOW_FLAGS)

bench-crash: ## crash trials per minute for each fault plan on scenarios/smoke/plain-stream.json (patched 18, native)
	PGBB_BENCH=1 $(GO) test -count=1 -run '^$$' -bench BenchmarkCrashPlans -benchtime 1x -timeout 60m ./harness/campaign

bench-powerloss: ## whole power-loss and disk-fault trials per minute for each plan of scenarios/smoke/powerloss.json (patched 18, native; root, /dev/fuse)
	PGBB_BENCH=1 $(GO) test -count=1 -run '^$$' -bench BenchmarkPowerLossPlans -benchtime 1x -timeout 90m ./harness/campaign

bench-knownbad: ## per known-bad variant, median time and trials to the first violation over PGBB_BENCH_SEEDS seeds (default 3)
	PGBB_BENCH=1 PGBB_KNOWNBAD=$(KNOWNBAD) $(GO) test -count=1 -run '^$$' -bench BenchmarkKnownBad -benchtime 1x -timeout 180m ./harness/campaign

clean: ## remove .cache (downloads, native builds) and the project's images
	-$(GO) run ./harness/cmd/pgbb-build -clean
	rm -rf .cache
