#!/usr/bin/env bash
# Reproduce the README's evaluation of a model on held-out RAVDESS actors 23 and 24.
#   bash benchmarks/evaluate_default.sh [RAVDESS_DIR] [OUT_DIR] [MODEL]
# MODEL is a bundle folder or registry name (default: the embedded default). With espeak-ng installed
# it also scores WER on sentences outside RAVDESS (benchmarks/espeak_corpus.py).
set -euo pipefail
ravdess=${1:-../shared/data/ravdess}
out=${2:-eval-results}
model=${3:-default}
judges=benchmarks/judges
python -m benchmarks.ravdess_pairs "$ravdess" "$out/pairs"
for set in converted real sources; do   # emotion accuracy and MCD/F0
    ainn evaluate "$out/pairs/$set.csv" --model "$model" --judge "$judges/emotion" --device cpu \
        --out "$out/$set" --plots "$out/$set" --overwrite
done
# strength: the strength judge reads references and outputs; the sweep asks for 0 .. 1
ainn evaluate "$out/pairs/converted.csv" --model "$model" --judge "$judges/strength" --device cpu \
    --out "$out/strength" --overwrite
ainn evaluate "$out/pairs/sweep.csv" --model "$model" --judge "$judges/strength" --device cpu \
    --out "$out/sweep" --plots "$out/sweep" --overwrite
python -m benchmarks.strength_curve "$out/sweep/results.csv" | tee "$out/sweep/curve.json"
if command -v espeak-ng > /dev/null; then   # content outside RAVDESS: 20 sentences, 4 unseen voices
    python -m benchmarks.espeak_corpus "$out/espeak" --train 0 --ravdess "$ravdess"
    ainn evaluate "$out/espeak/content.csv" --model "$model" --device cpu --out "$out/content" --overwrite
    ainn evaluate "$out/espeak/content_sources.csv" --device cpu --out "$out/content-sources" --overwrite
fi
