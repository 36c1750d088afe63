#!/usr/bin/env bash
# Regenerates the side-by-side figures of BENCHMARKS.md from a fresh run:
#   1. the comparison runner, thorough unless `--quick` is given (any argument is passed
#      on to it, e.g. `--case throughput`), writing benches/results/compare.jsonl;
#   2. the SVG plots drawn from that file, into benches/plots/;
#   3. a markdown table of every line, headed by the machine and the load, on stdout and
#      in benches/results/compare.md.
# Progress goes to stderr. Run from anywhere: benches/regenerate.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."

results=benches/results/compare.jsonl
plots=benches/plots
mkdir -p "$(dirname "$results")" "$plots"

cargo build --release -p errand-benches --bin compare --bin plots >&2
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
# The lines go to the results file; stdout is kept for the table.
cargo run --release -q -p errand-benches --bin compare -- "$@" --out "$results" >/dev/null
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
cargo run --release -q -p errand-benches --bin plots -- "$results" "$plots"

model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown)
mode=thorough
for arg in "$@"; do [[ "$arg" == --quick ]] && mode=quick; done
{
    printf 'Run of %s (%s mode): %s CPU(s), %s; load average %s before, %s after.\n' \
        "$started" "$mode" "$(nproc)" "$model" "$load_before" "$load_after"
    printf 'Command: `benches/regenerate.sh %s`\n\n' "$*"
    cargo run --release -q -p errand-benches --bin plots -- --table "$results"
} | tee "${results%.jsonl}.md"
