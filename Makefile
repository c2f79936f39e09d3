# Common tasks. `make run` serves on 127.0.0.1:3100 with data in ./data.
.PHONY: run test bench lint fmt load soak clean fuzz

run:
	cargo run --release

test:
	cargo test

bench:
	cargo bench

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

fmt:
	cargo fmt

# End-to-end push throughput against a server started with `make run`.
load:
	cargo run --release -- load --url http://127.0.0.1:3100

# Mixed push + query load with latency percentiles and the server's RSS over
# time, against a running server whose ingestion limit allows the rate (see
# docs/benchmarks.md, "Soak").
SOAK_DURATION ?= 30m
SOAK_RATE ?= 500000
soak:
	cargo run --release -- soak --url http://127.0.0.1:3100 --duration $(SOAK_DURATION) --push-rate $(SOAK_RATE)

# Fuzz every decoder of untrusted input, FUZZ_SECONDS each (default 30);
# panicking or slow inputs are saved to testdata/fuzz/<target>/crashes/.
FUZZ_SECONDS ?= 30
FUZZ_SEED ?= 1
fuzz:
	cargo run --release -- fuzz --target all --seconds $(FUZZ_SECONDS) --seed $(FUZZ_SEED)

clean:
	cargo clean
