# accord build and test entry points. `make help` lists them.

CARGO ?= cargo
ACCORD := ./target/release/accord
# Seeds run by `make test` (CI) on each of 3, 5 and 7 nodes, and by the long simulation target.
SIM_SEEDS_CI ?= 1000
SIM_SEEDS_LONG ?= 20000
# Kill-and-recover cycles run by `make test` (CI) and by `make crashtest`.
CRASH_CYCLES_CI ?= 50
CRASH_CYCLES_LONG ?= 500
# Scratch space for crash tests and the WAL benchmark: on the disk being measured.
SCRATCH ?= target/scratch
# Fuzzing: seconds per target in `make test` (CI) and in `make fuzz` (DURATION=... overrides).
FUZZ_SECONDS_CI ?= 15
FUZZ_SECONDS_LONG ?= $(or $(DURATION),300)
FUZZ_TARGETS := wal_record snapshot_file frame command c_abi
# Fault testing of real processes: seconds of faults in `make test` (CI) and in
# `make torture` (DURATION=... overrides), and the members (NODES=3 or 5).
TORTURE_SECONDS_CI ?= 120
TORTURE_SECONDS_LONG ?= $(or $(DURATION),600)
NODES ?= 3
# cargo-fuzz passes sanitizer flags that rustc accepts only on nightly; this machine has the
# stable toolchain alone, and RUSTC_BOOTSTRAP=1 lets stable accept them.
FUZZ := cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz

.PHONY: docs torture test-torture bench-compare test-go test-python bench-python bench-ffi install install-files header deps help build test lint test-rust test-sim test-crash test-fuzz fuzz-tools sim sim-long crashtest fuzz bench bench-wal bench-local fmt

help:
	@echo "make build     - build the library and the accord binary (release)"
	@echo "make test      - every test suite: lint, unit, scenario and storage tests,"
	@echo "                 $(SIM_SEEDS_CI) simulated seeds on each of 3, 5 and 7 nodes (fixed membership,"
	@echo "                 then with membership changes), $(CRASH_CYCLES_CI) crash cycles,"
	@echo "                 $(FUZZ_SECONDS_CI) s of fuzzing per decoder, $(TORTURE_SECONDS_CI) s of torture"
	@echo "make sim       - 1000 simulated seeds on 5 nodes with every fault"
	@echo "make sim-long  - $(SIM_SEEDS_LONG) simulated seeds on 5 nodes, then as many with membership changes (long)"
	@echo "make crashtest - $(CRASH_CYCLES_LONG) kill -9 / recover cycles of a process writing the WAL"
	@echo "make fuzz      - fuzz each decoder ($(FUZZ_TARGETS)) for $(FUZZ_SECONDS_LONG) s"
	@echo "make torture   - $(TORTURE_SECONDS_LONG) s of faults on $(NODES) real server processes under load, histories"
	@echo "                 checked by Porcupine and accord's checker (DURATION=..., NODES=3|5)"
	@echo "make bench     - core consensus benchmark (throughput, allocations)"
	@echo "make bench-wal - WAL append cost next to raw fdatasync on the disk of $(SCRATCH)"
	@echo "make bench-local - a 3-process cluster on loopback: put/get/failover/memory next to the floor"
	@echo "make bench-ffi - the C ABI's cost per call next to the Rust API"
	@echo "make bench-compare - accord beside etcd (built from the Go module proxy) on this machine:"
	@echo "                 the same workloads, alternating rounds; writes BENCHMARKS.md"
	@echo "make test-python - build the Python package into target/venv; stubtest, mypy, pytest"
	@echo "make test-go   - the Go package's tests (conformance scenarios included) with the race detector"
	@echo "make bench-python - Python's cost per call next to Rust; puts/s from one Python thread"
	@echo "make header    - regenerate include/accord.h from src/ffi (commit it)"
	@echo "make install   - install libaccord (.so, .a), accord.h, accord.hpp, accord.pc under PREFIX"
	@echo "make fmt       - format the code"

build:
	$(CARGO) build --release

# Installs the C library: libaccord.so (SONAME libaccord.so.0), libaccord.a, accord.h,
# accord.hpp and accord.pc, under PREFIX (default /usr/local).
PREFIX ?= /usr/local
VERSION := 0.1.0
LIBDIR := $(PREFIX)/lib
install: build install-files

install-files:
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 0755 target/release/libaccord.so $(DESTDIR)$(LIBDIR)/libaccord.so.$(VERSION)
	ln -sf libaccord.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libaccord.so.0
	ln -sf libaccord.so.0 $(DESTDIR)$(LIBDIR)/libaccord.so
	install -m 0644 target/release/libaccord.a $(DESTDIR)$(LIBDIR)/libaccord.a
	install -m 0644 include/accord.h $(DESTDIR)$(PREFIX)/include/accord.h
	if [ -f include/accord.hpp ]; then install -m 0644 include/accord.hpp $(DESTDIR)$(PREFIX)/include/accord.hpp; fi
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' bindings/c/accord.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/accord.pc

# Regenerates include/accord.h from src/ffi (commit the result).
# Rewrites the generated pages under docs/ (the CLI reference) from the binary.
docs:
	ACCORD_UPDATE_DOCS=1 $(CARGO) test --release --test cli_reference

header:
	ACCORD_WRITE_HEADER=1 $(CARGO) build --release

# The suites `make test` runs, in order; make stops at the first that fails.
TEST_SUITES := lint test-rust test-python test-go test-sim test-crash test-fuzz test-torture

test: $(TEST_SUITES)
	@echo "suites: $(words $(TEST_SUITES)) passed, 0 failed"

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy --lib --features python -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --quiet
	@test -z "$$(gofmt -l bindings/go bench torture)" || { gofmt -l bindings/go bench torture; echo "run gofmt -w bindings/go bench torture"; exit 1; }
	cd torture && go vet ./...

# What the tests need besides Rust: a C toolchain (present), valgrind, pkg-config and
# faketime (the torture test's wall-clock jumps), installed here if missing (apt, as root
# or through sudo).
deps:
	@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c "import ensurepip" 2>/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq python3-venv >/dev/null; \
	}
	@for tool in valgrind pkg-config faketime; do \
		command -v $$tool >/dev/null 2>&1 && continue; \
		echo "installing $$tool"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$tool >/dev/null; \
		command -v $$tool >/dev/null 2>&1 || { echo "$$tool is required: apt-get install $$tool"; exit 1; }; \
	done

# The Python package: a virtual environment in target/venv with maturin, pytest and mypy
# (created and filled once), the package built into it by maturin (in target/python: its
# libaccord carries the Python module and must not replace the C library in target/release,
# which the C and Go tests link), then the stubs checked
# against the native module (stubtest), the package type-checked, and the pytest suite.
PYTHON ?= python3
VENV := target/venv
PY_TOOLS := maturin pytest pytest-asyncio mypy
test-python: deps build
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/python -c "import maturin, pytest, pytest_asyncio, mypy" 2>/dev/null || \
		$(VENV)/bin/pip install -q --disable-pip-version-check $(PY_TOOLS)
	VIRTUAL_ENV=$(abspath $(VENV)) CARGO_TARGET_DIR=$(abspath target/python) \
		$(VENV)/bin/maturin develop --release --quiet
	cd target && ../$(VENV)/bin/python -m mypy.stubtest accord._native
	$(VENV)/bin/python -m mypy --strict python/accord
	$(VENV)/bin/python -m pytest -q python/tests

# The Go package (cgo over target/release/libaccord.so), with the race detector, then again
# under constant garbage collection (-tags gcstress) to expose lifetime bugs. One test builds a
# program outside the repository against an installed library (pkg-config, from deps).
test-go: deps build
	cd bindings/go && go vet ./... && go test -race -count=1 ./... && \
		go test -race -count=1 -tags gcstress ./...

# The C tests link target/release/libaccord.so: build it first.
test-rust: deps build
	$(CARGO) test --release

test-sim: build
	$(ACCORD) sim --nodes 3 --seeds $(SIM_SEEDS_CI) --faults all
	$(ACCORD) sim --nodes 5 --seeds $(SIM_SEEDS_CI) --faults all
	$(ACCORD) sim --nodes 7 --seeds $(SIM_SEEDS_CI) --faults all
	$(ACCORD) sim --nodes 3 --seeds $(SIM_SEEDS_CI) --faults all,membership
	$(ACCORD) sim --nodes 5 --seeds $(SIM_SEEDS_CI) --faults all,membership
	$(ACCORD) sim --nodes 7 --seeds $(SIM_SEEDS_CI) --faults all,membership

test-crash: build
	$(ACCORD) crashtest --dir $(SCRATCH)/crashtest --cycles $(CRASH_CYCLES_CI)

fuzz-tools:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked

test-fuzz: fuzz-tools
	for target in $(FUZZ_TARGETS); do \
		($(FUZZ) run -O $$target -- -max_total_time=$(FUZZ_SECONDS_CI)) || exit 1; \
	done

fuzz: fuzz-tools
	for target in $(FUZZ_TARGETS); do \
		($(FUZZ) run -O $$target -- -max_total_time=$(FUZZ_SECONDS_LONG)) || exit 1; \
	done

sim: build
	$(ACCORD) sim --nodes 5 --seeds 1000 --faults all

sim-long: build
	$(ACCORD) sim --nodes 5 --seeds $(SIM_SEEDS_LONG) --faults all
	$(ACCORD) sim --nodes 5 --seeds $(SIM_SEEDS_LONG) --faults all,membership

crashtest: build
	$(ACCORD) crashtest --dir $(SCRATCH)/crashtest --cycles $(CRASH_CYCLES_LONG)

bench: build
	$(ACCORD) bench core

bench-wal: build
	$(ACCORD) bench wal --dir $(SCRATCH)/bench-wal

bench-local: build
	$(ACCORD) bench local

# Python's cost per call next to Rust, and puts per second from one Python thread.
bench-python: test-python
	$(VENV)/bin/python python/bench.py $(ACCORD)

# accord beside etcd on this machine: etcd's own server (the version bench/etcd/go.mod pins)
# is built from the Go module proxy into target/etcd, then bench/compare starts a 3-member
# cluster of each on loopback and runs the same workloads against both, alternating them for
# BENCH_ROUNDS rounds; it prints one `compare ...` line per workload and writes
# bench/results/compare.csv, bench/results/compare.png and BENCHMARKS.md.
ETCD := target/etcd/etcd
BENCH_ROUNDS ?= 3
BENCH_SECONDS ?= 3
$(ETCD): bench/etcd/go.mod bench/etcd/go.sum bench/etcd/main.go
	cd bench/etcd && go build -o $(abspath $(ETCD)) .

bench-compare: build $(ETCD)
	cd bench/compare && go run . --accord $(abspath $(ACCORD)) --etcd $(abspath $(ETCD)) \
		--rounds $(BENCH_ROUNDS) --seconds $(BENCH_SECONDS) --out ../results --md ../../BENCHMARKS.md

# Real `accord server` processes under faults (kill -9, SIGSTOP beyond the session TTL,
# partitions through a proxy on every peer link, slow and failing disks, wall-clock jumps)
# while clients use them; the histories are checked by Porcupine and by accord's own
# checker, plus mutex, queue and watch checks. Ends with one `torture: ...` line; non-zero
# exit on any violation.
torture: deps build
	cd torture && go run . --accord $(abspath $(ACCORD)) --duration $(TORTURE_SECONDS_LONG) --nodes $(NODES)

test-torture: deps build
	cd torture && go run . --accord $(abspath $(ACCORD)) --duration $(TORTURE_SECONDS_CI) --nodes 3

# What the C ABI adds to a local serializable get, next to the same call in Rust.
bench-ffi: build
	$(ACCORD) bench ffi

fmt:
	$(CARGO) fmt
