# accord build and test entry points. `make help` lists them.

CARGO ?= cargo
# Seeds run by `make test` (CI) and by the long simulation target.
SIM_SEEDS_CI ?= 1000
SIM_SEEDS_LONG ?= 20000
# Kill-and-recover cycles run by `make test` (CI) and by `make crashtest`.
CRASH_CYCLES_CI ?= 50
CRASH_CYCLES_LONG ?= 500
# Scratch space for crash tests and the WAL benchmark: on the disk being measured.
SCRATCH ?= target/scratch

.PHONY: help build test test-rust test-sim test-crash lint sim sim-long bench bench-wal crashtest fmt

help:
	@echo "make build     - build the library and the accord binary (release)"
	@echo "make test      - every test suite: lint, unit, scenario and integration tests, $(SIM_SEEDS_CI) simulated seeds"
	@echo "make sim       - 1000 simulated seeds on 5 nodes with every fault"
	@echo "make sim-long  - $(SIM_SEEDS_LONG) simulated seeds (long)"
	@echo "make bench     - core consensus benchmark (throughput, allocations)"
	@echo "make bench-wal - WAL append cost next to raw fdatasync on the disk of $(SCRATCH)"
	@echo "make crashtest - $(CRASH_CYCLES_LONG) kill -9 / recover cycles of a process writing the WAL"
	@echo "make fmt       - format the code"

build:
	$(CARGO) build --release

test: lint test-rust test-sim test-crash

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

test-rust:
	$(CARGO) test --release

test-test-crash: build
	./target/release/accord crashtest --dir $(SCRATCH)/crashtest --cycles $(CRASH_CYCLES_CI)

crashtest: build
	./target/release/accord crashtest --dir $(SCRATCH)/crashtest --cycles $(CRASH_CYCLES_LONG)

bench-wal: build
	./target/release/accord bench wal --dir $(SCRATCH)/bench-wal

sim: build
	./target/release/accord sim --nodes 3 --seeds $(SIM_SEEDS_CI) --faults all
	./target/release/accord sim --nodes 5 --seeds $(SIM_SEEDS_CI) --faults all
	./target/release/accord sim --nodes 7 --seeds $(SIM_SEEDS_CI) --faults all

test-crash: build
	./target/release/accord crashtest --dir $(SCRATCH)/crashtest --cycles $(CRASH_CYCLES_CI)

crashtest: build
	./target/release/accord crashtest --dir $(SCRATCH)/crashtest --cycles $(CRASH_CYCLES_LONG)

bench-wal: build
	./target/release/accord bench wal --dir $(SCRATCH)/bench-wal

sim: build
	./target/release/accord sim --nodes 5 --seeds 1000 --faults all

sim-long: build
	./target/release/accord sim --nodes 5 --seeds $(SIM_SEEDS_LONG) --faults all

bench: build
	./target/release/accord bench core

fmt:
	$(CARGO) fmt
