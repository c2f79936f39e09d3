# Common tasks. `make run` serves on 127.0.0.1:3100 with data in ./data.
.PHONY: run test bench lint fmt load clean

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

clean:
	cargo clean
