#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 30), on stable Rust
# without a sanitizer (`-s none`), memory bounded as the project promises:
# libFuzzer stops on a crash, a timeout or an allocation past 2 GB, and
# this script fails. New inputs go to fuzz/corpus/TARGET (not committed);
# the committed seeds are in fuzz/seeds/TARGET.
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET ...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(idx model_file checkpoint image_digit layer_spec csv_table)
fi
cd fuzz
cargo fuzz build -s none --release
mkdir -p logs
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    echo "-- fuzz $t for ${seconds} s"
    set +e
    cargo fuzz run -s none --release "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=2048 \
        -timeout=10 -print_final_stats=1 > "logs/$t.txt" 2>&1
    rc=$?
    set -e
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "logs/$t.txt" || true
    if [ $rc -ne 0 ]; then
        echo "fuzz target $t failed (exit $rc); the end of its log:" >&2
        tail -40 "logs/$t.txt" >&2
        exit 1
    fi
done
