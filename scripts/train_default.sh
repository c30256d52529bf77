#!/usr/bin/env bash
# Train the shipped default (checkpoints/default) from scratch, in seven resumable steps:
#   bash scripts/train_default.sh RUN_DIR        (re-run the same line to resume after an interruption)
#   1. the paper model, Stage I + Stage II (configs/default.toml)             -> RUN_DIR/paper-bundle
#   2. the prosody predictor on RAVDESS's parallel takes (train/fit_prosody)   -> RUN_DIR/prosody-bundle
#   3. reshape phase 1: G fine-tuned on the parallel takes (configs/reshape.toml, 1800 steps) -> RUN_DIR/reshape-1-bundle
#   4. reshape phase 2: with LibriSpeech voices, f0-shift gain 0.5 (configs/reshape_libri.toml) -> RUN_DIR/reshape-2-bundle
#   5. R alone, then its head refitted on whole utterances (configs/recognizer.toml)  -> RUN_DIR/recognizer-bundle
#   6. the per-emotion pitch contour on RAVDESS's aligned takes, asked twice over (train/fit_contour, seconds)
#                                                                              -> RUN_DIR/contour-bundle
#   7. the weight of the reference's speaking rate on the duration, used only with `ainn convert --tempo`
#      (train/fit_rate --no-follow, 2.5 min)                                  -> RUN_DIR/default-bundle
# A step whose bundle exists is skipped; a step with a checkpoint continues it (--resume). Extra `--set KEY=VALUE`
# settings for every `ainn train` go in AINN_TRAIN_SET (e.g. "stage1.steps=1"). Wall time on the 2-core CPU:
# README, "Train" ("The shipped default from scratch").
set -euo pipefail
run=${1:?usage: bash scripts/train_default.sh RUN_DIR}
extra=()
for s in ${AINN_TRAIN_SET:-}; do extra+=(--set "$s"); done
mkdir -p "$run"

train() {  # train OUT_FOLDER EXPORT ARGS...: skip when EXPORT exists, resume when OUT has a checkpoint
    local out=$1 export=$2
    shift 2
    [ -f "$export/bundle.json" ] && { echo "have $export"; return; }
    local resume=()
    compgen -G "$out/*/latest.pt" > /dev/null && resume=(--resume)
    ainn train --out "$out" "$@" "${extra[@]}" "${resume[@]}" --export "$export"
}

train "$run/paper" "$run/paper-bundle" --config configs/default.toml --set model.recognizer.edge_pad=32
[ -f "$run/prosody-bundle/bundle.json" ] || python -m ainn_cli.train.fit_prosody --bundle "$run/paper-bundle" \
    --out "$run/prosody-bundle" ${AINN_FIT_STEPS:+--steps "$AINN_FIT_STEPS"}
train "$run/reshape-1" "$run/reshape-1-bundle" --config configs/reshape.toml --stage stage2 \
    --set stage2.steps=1800 --set "init_bundle=\"$run/prosody-bundle\""
train "$run/reshape-2" "$run/reshape-2-bundle" --config configs/reshape_libri.toml --stage stage2 \
    --set "init_bundle=\"$run/reshape-1-bundle\""
train "$run/recognizer" "$run/recognizer-bundle" --config configs/recognizer.toml --stage recognizer \
    --set "init_bundle=\"$run/reshape-2-bundle\""
[ -f "$run/contour-bundle/bundle.json" ] || python -m ainn_cli.train.fit_contour --bundle "$run/recognizer-bundle" \
    --out "$run/contour-bundle" --gain 2
[ -f "$run/default-bundle/bundle.json" ] || python -m ainn_cli.train.fit_rate --bundle "$run/contour-bundle" \
    --out "$run/default-bundle" --no-follow
echo "the default model: $run/default-bundle"
