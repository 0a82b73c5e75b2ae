#!/usr/bin/env bash
# Fuzzes the command parser and the Slack payload decoding for a bounded
# time each (FUZZ_SECONDS, default 60). Exits non-zero on any crash.
# cargo-fuzz wants nightly features; RUSTC_BOOTSTRAP lets stable build them.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for target in command_parser slack_payloads; do
  echo "== fuzz $target for ${SECONDS_EACH}s"
  mkdir -p "fuzz/corpus/$target"
  cargo fuzz run "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -print_final_stats=1 2>&1 \
    | grep -E "stat::|Done|ERROR|panicked|SUMMARY" || true
  # cargo fuzz leaves a crash-* file on failure.
  if ls "fuzz/artifacts/$target"/crash-* >/dev/null 2>&1; then
    echo "fuzz: $target crashed; see fuzz/artifacts/$target" >&2
    exit 1
  fi
done
echo "fuzz: no crashes"
