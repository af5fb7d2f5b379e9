# The README's commands.
.PHONY: run stop test lint fmt

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

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets

fmt:
	cargo fmt --all
