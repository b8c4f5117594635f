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

.PHONY: help build test lint test-rust test-sim test-crash sim sim-long crashtest bench bench-wal fmt

help:
	@echo "make build     - build the library and the accord binary (release)"
	@echo "make test      - every test suite: lint, unit, scenario and storage tests,"
	@echo "                 $(SIM_SEEDS_CI) simulated seeds on each of 3, 5 and 7 nodes, $(CRASH_CYCLES_CI) crash cycles"
	@echo "make sim       - 1000 simulated seeds on 5 nodes with every fault"
	@echo "make sim-long  - $(SIM_SEEDS_LONG) simulated seeds on 5 nodes (long)"
	@echo "make crashtest - $(CRASH_CYCLES_LONG) kill -9 / recover cycles of a process writing the WAL"
	@echo "make bench     - core consensus benchmark (throughput, allocations)"
	@echo "make bench-wal - WAL append cost next to raw fdatasync on the disk of $(SCRATCH)"
	@echo "make fmt       - format the code"

build:
	$(CARGO) build --release

test: lint test-rust test-sim test-crash

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

test-rust:
	$(CARGO) test --release

test-sim: build
	$(ACCORD) sim --nodes 3 --seeds $(SIM_SEEDS_CI) --faults all
	$(ACCORD) sim --nodes 5 --seeds $(SIM_SEEDS_CI) --faults all
	$(ACCORD) sim --nodes 7 --seeds $(SIM_SEEDS_CI) --faults all

test-crash: build
	$(ACCORD) crashtest --dir $(SCRATCH)/crashtest --cycles $(CRASH_CYCLES_CI)

sim: build
	$(ACCORD) sim --nodes 5 --seeds 1000 --faults all

sim-long: build
	$(ACCORD) sim --nodes 5 --seeds $(SIM_SEEDS_LONG) --faults all

crashtest: build
	$(ACCORD) crashtest --dir $(SCRATCH)/crashtest --cycles $(CRASH_CYCLES_LONG)

bench: build
	$(ACCORD) bench core

bench-wal: build
	$(ACCORD) bench wal --dir $(SCRATCH)/bench-wal

fmt:
	$(CARGO) fmt
