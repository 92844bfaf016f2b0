# keycel: `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
export CARGO_TERM_COLOR := never

export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: demo test setup-rust setup-postgres setup-redis test-icount test-rust test-nostd test-policies test-python test-wasm test-fuzz fuzz fmt lint bench

setup-rust:
	rustup component add rustfmt clippy >/dev/null 2>&1 || true
	rustup target add wasm32-unknown-unknown x86_64-unknown-none

# PostgreSQL 15 for the store tests (tests/servers/postgres.sh starts throwaway clusters).
PGBIN ?= /usr/lib/postgresql/15/bin
setup-postgres:
	if [ ! -x $(PGBIN)/initdb ]; then
	  apt-get update -q >/dev/null
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql-15 >/dev/null
	fi

demo:
	$(CARGO) build --release -p keycel-cli
	./target/release/keycel demo

lint: setup-rust
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --features keycel/test-util -- -D warnings

test-nostd: setup-rust
	$(CARGO) build -p keycel --no-default-features --target x86_64-unknown-none

# Redis admission's tests start Debian's redis-server on 127.0.0.1 (installed when missing).
setup-redis:
	if ! command -v redis-server >/dev/null; then
	  apt-get update -q >/dev/null && apt-get install -y -q redis-server >/dev/null
	  # The packaged service is not needed: tests start their own server on a free port.
	  (systemctl disable --now redis-server || service redis-server stop || true) >/dev/null 2>&1
	fi

test-rust: setup-rust setup-postgres setup-redis
	$(CARGO) test --workspace
	# Revocation latency across processes is asserted optimized (argon2 on the 401 path).
	$(CARGO) test --release -p keycel-postgres --test processes -- --nocapture

# Instruction count of `authorize` with process-local admission (callgrind, deterministic):
# fails when it grows more than 10% over core/icount/authorize.expected.
test-icount: setup-rust
	bash core/icount/check.sh

# The policy tests through the CLI, as an operator would run them.
test-policies: test-rust
	$(CARGO) run -q -p keycel-cli -- policy check policies/
	$(CARGO) run -q -p keycel-cli -- policy test policies/

# Every fuzz target for FUZZ_SECONDS (default 15 s each in `make test`; `make fuzz` for longer).
FUZZ_SECONDS ?= 15
test-fuzz:
	$(MAKE) -C fuzz fuzz SECONDS_EACH=$(FUZZ_SECONDS)

fuzz:
	$(MAKE) -C fuzz fuzz SECONDS_EACH=$(or $(SECONDS_EACH),300)

test-python: setup-postgres setup-redis
	$(MAKE) -C bindings-python test

test-wasm:
	$(MAKE) -C bindings-wasm test

test: lint test-nostd test-rust test-icount test-policies test-python test-wasm test-fuzz
	@echo "make test: all suites passed"

bench:
	$(CARGO) bench -p keycel --features test-util
	$(MAKE) -C bindings-python bench
	$(MAKE) -C bindings-wasm bench
