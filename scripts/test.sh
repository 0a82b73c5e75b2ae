#!/usr/bin/env bash
# Runs every check and every test, installing and starting what they need
# first (Docker engine, Postgres, images, sqlx-cli). Idempotent; this is the
# README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-rig.sh

export DATABASE_URL=${DATABASE_URL:-postgres://vessel:vessel@127.0.0.1:5432/vessel}

echo "== format and lints"
cargo fmt --all -- --check
SQLX_OFFLINE=true cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== sqlx offline data matches the queries"
if ! command -v sqlx >/dev/null 2>&1; then
  cargo install sqlx-cli --version 0.9.0 --locked --no-default-features --features postgres,rustls
fi
sqlx migrate run --source migrations
cargo sqlx prepare --workspace --check -- --all-targets

echo "== tests"
export SQLX_OFFLINE=true
# The binaries too: the console and restart tests run them as processes.
cargo build --workspace --locked --bins
# The deploy test's images, from these binaries (cached when unchanged).
scripts/build-service-images.sh target/debug
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
