# Common tasks. `make run` serves on 127.0.0.1:3100 with data in ./data.
.PHONY: run test bench lint fmt load soak clean fuzz fuzz-cov

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
# FUZZ_SECONDS as given on the command line or in the environment, before
# `make fuzz` defaults it to 30 (`make fuzz-cov` defaults it to 60).
FUZZ_COV_SECONDS := $(or $(FUZZ_SECONDS),60)

# Fuzz every decoder of untrusted input, FUZZ_SECONDS each (default 30);
# panicking or slow inputs are saved to testdata/fuzz/<target>/crashes/.
FUZZ_SECONDS ?= 30
FUZZ_SEED ?= 1
fuzz:
	cargo run --release -- fuzz --target all --seconds $(FUZZ_SECONDS) --seed $(FUZZ_SEED)

# Coverage-guided fuzzing with cargo-fuzz (libFuzzer + AddressSanitizer on
# the stable toolchain, via RUSTC_BOOTSTRAP=1), FUZZ_SECONDS per target
# (default 60), one target at a time at nice 19, the most valuable first.
# The corpus grows in fuzz/corpus/<target>/ (seeded from testdata/fuzz/);
# a crash, timeout or OOM stops the run and is saved in fuzz/artifacts/.
FUZZ_TARGETS ?= logql push_proto otlp_proto push_gzip wal block index chunk \
	template labels push_json otlp_json wal_record
FUZZ_SANITIZER ?= address
fuzz-cov:
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  mkdir -p corpus/$$t && \
	  RUSTC_BOOTSTRAP=1 nice -n 19 cargo fuzz run --sanitizer $(FUZZ_SANITIZER) \
	    $$t corpus/$$t ../testdata/fuzz/$$t -- -max_total_time=$(FUZZ_COV_SECONDS) \
	    -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 || exit 1; \
	done

clean:
	cargo clean
