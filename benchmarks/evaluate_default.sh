#!/usr/bin/env bash
# Reproduce the README's evaluation of the default model on held-out RAVDESS actors 23 and 24.
#   bash benchmarks/evaluate_default.sh [RAVDESS_DIR] [OUT_DIR]
set -euo pipefail
ravdess=${1:-../shared/data/ravdess}
out=${2:-eval-results}
judges=benchmarks/judges
python -m benchmarks.ravdess_pairs "$ravdess" "$out/pairs"
for set in converted real sources; do   # emotion accuracy and MCD/F0
    ainn evaluate "$out/pairs/$set.csv" --model default --judge "$judges/emotion" --device cpu \
        --out "$out/$set" --plots "$out/$set" --overwrite
done
# strength: the strength judge reads references and outputs; the sweep asks for 0 .. 1
ainn evaluate "$out/pairs/converted.csv" --model default --judge "$judges/strength" --device cpu \
    --out "$out/strength" --overwrite
ainn evaluate "$out/pairs/sweep.csv" --model default --judge "$judges/strength" --device cpu \
    --out "$out/sweep" --plots "$out/sweep" --overwrite
python -m benchmarks.strength_curve "$out/sweep/results.csv" | tee "$out/sweep/curve.json"
