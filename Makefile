# Developer entry points. `make test` is the README's test command.
.PHONY: fmt lint test scan bench fuzz

fmt:
	cargo fmt --all

lint:
	cargo clippy --workspace --all-targets --locked -- -D warnings

test:
	bash scripts/test.sh

# make scan PATHS="/usr/bin /etc"
scan:
	bash scripts/scan.sh $(PATHS)

bench:
	bash bench/scan.sh
	bash bench/throughput.sh
	bash bench/reports.sh
	bash bench/modules.sh
	bash bench/rest.sh

# Mutation fuzzing of the parser modules: FUZZ_SECS per module (default 60).
fuzz:
	cargo run --release -p multiscanner-worker --no-default-features --example fuzz
