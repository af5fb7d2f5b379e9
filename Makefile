# The README's commands.
.PHONY: run stop test bench lint fmt

# Starts everything on this machine and runs the main job (see README).
run:
	deploy/local/run.sh

# Stops what `make run` started.
stop:
	deploy/local/stop.sh

# The whole suite against real PostgreSQL, RabbitMQ and smtp-sink.
test:
	deploy/local/services.sh
	deploy/local/clean-tests.sh
	cargo test --workspace --no-fail-fast

# Raw broker and SMTP ceilings and a 100,000-recipient campaign, in one run
# (BENCH_ARGS="--recipients 20000" for a shorter one); then segment counts
# through contacts against hand-written SQL on 1,000,000 generated people
# (SEGMENT_BENCH_ARGS="--people 100000 --runs 30" for a shorter one); then a
# 1,000,000-row French Excel import against a raw COPY of the same file
# (IMPORT_BENCH_ARGS="--rows 100000" for a shorter one).
bench:
	deploy/local/services.sh
	cargo build --release -p muster-contacts -p muster-messaging -p muster-bench
	cargo run --release -p muster-bench -- $(BENCH_ARGS)
	cargo run --release -p muster-bench -- segments $(SEGMENT_BENCH_ARGS)
	cargo run --release -p muster-bench -- import $(IMPORT_BENCH_ARGS)

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets

fmt:
	cargo fmt --all
