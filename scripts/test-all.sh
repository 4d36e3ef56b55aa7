#!/usr/bin/env bash
# Runs every test of leaseq on a fresh Debian machine: installs what the
# tests need (tmux, a real single-node Slurm, cargo-fuzz when a nightly
# toolchain is present), starts Slurm, then checks formatting and lints,
# runs the unit, integration and end-to-end tests, makes sure the benches
# build, and runs each fuzz target briefly.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "tools"
if ! command -v tmux >/dev/null 2>&1 || ! command -v strace >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq tmux strace >/dev/null
fi
tmux -V
strace -V | head -1

step "slurm"
bash scripts/ensure-slurm.sh
# The real-Slurm tests must run here, not skip.
export LEASEQ_SLURM_TESTS=require

step "format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings

step "benches build"
cargo bench --no-run --quiet

step "fuzz (briefly)"
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet
  for target in nfs_model parsers; do
    corpus="fuzz/corpus/$target"
    mkdir -p "$corpus"
    cp -n fuzz/seeds/"$target"/* "$corpus"/ 2>/dev/null || true
    # The NFS model check is safe Rust through and through: no sanitizer,
    # and plain coverage, for three times the executions per second.
    flags=()
    if [ "$target" = nfs_model ]; then flags=(-s none --no-trace-compares); fi
    (cd fuzz && cargo +nightly fuzz run "${flags[@]}" "$target" "corpus/$target" -- -max_total_time="${FUZZ_SECONDS:-30}" -print_final_stats=1 2>&1 | grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec|Done|ERROR|panicked' || true)
    if [ -n "$(ls -A fuzz/artifacts/"$target" 2>/dev/null)" ]; then
      echo "fuzz target $target found a crash: see fuzz/artifacts/$target" >&2
      exit 1
    fi
  done
else
  echo "no nightly toolchain: fuzz targets not run (their seeds are replayed by cargo test)"
fi

step "tests"
log=$(mktemp)
cargo test --quiet 2>&1 | tee "$log"

# One closing line with the totals of every test binary above.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "%d passed, %d failed\n", p, f; exit (f > 0) }' "$log"
