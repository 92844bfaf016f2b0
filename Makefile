# keycel: `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
export CARGO_TERM_COLOR := never

export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: demo test setup-rust setup-postgres test-rust test-nostd test-policies test-python test-wasm test-fuzz fuzz fmt lint bench

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

test-rust: setup-rust setup-postgres
	$(CARGO) test --workspace
	# Revocation latency across processes is asserted optimized (argon2 on the 401 path).
	$(CARGO) test --release -p keycel-postgres --test processes -- --nocapture

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

test-python: setup-postgres
	$(MAKE) -C bindings-python test

test-wasm:
	$(MAKE) -C bindings-wasm test

test: lint test-nostd test-rust test-policies test-python test-wasm test-fuzz
	@echo "make test: all suites passed"

bench:
	$(CARGO) bench -p keycel --features test-util
	$(MAKE) -C bindings-python bench
	$(MAKE) -C bindings-wasm bench
