#!/usr/bin/env bash
# The shipped default (checkpoints/default), trained from scratch: the one place its recipe is written down.
#
#   bash scripts/train_default.sh RUN_DIR      run (or, after an interruption, resume) every step
#   bash scripts/train_default.sh --list       print the steps
#
# Each step reads the bundle of the step before it and writes RUN_DIR/NAME-bundle; a step whose bundle exists is
# skipped, and a training step with a checkpoint continues it (--resume). The data come from the data root
# (AINN_DATA, else ./data; fill it with `ainn data ravdess` and `ainn data librispeech`).
# Extra `--set KEY=VALUE` settings for every training step go in AINN_TRAIN_SET (e.g. "stage1.steps=1"), and
# AINN_FIT_STEPS caps the prosody fit's steps: both only to try the recipe quickly.
set -euo pipefail

# name        kind   what it does (wall time on the 2-core machine)                        arguments
STEPS=$(cat <<'TABLE'
paper       train  the paper model, Stage I 3000 + Stage II 1200 steps (1 h 30 min)       --config configs/default.toml --set model.recognizer.edge_pad=32
prosody     fit    the prosody predictor on RAVDESS's parallel takes (4 min)                prosody
reshape-1   train  reshape phase 1: G fine-tuned on the parallel takes, 1800 steps (70 min) --config configs/reshape.toml --stage stage2 --set stage2.steps=1800
reshape-2   train  reshape phase 2: LibriSpeech voices in G's batches, f0 gain 0.5 (28 min) --config configs/reshape_libri.toml --stage stage2
recognizer  train  R alone, then its head refitted on whole utterances (25 min)             --config configs/recognizer.toml --stage recognizer
contour     fit    the per-emotion pitch contour, asked twice over (10 s)                   contour --gain 2
rate        fit    the weight of the reference's speaking rate, for --tempo only (2.5 min)  rate --no-follow
default     fit    the reader for ainn strength, on RAVDESS, LibriSpeech, EmoDB, URDU (5 min) reader
TABLE
)

if [ "${1:-}" = "--list" ]; then
    echo "$STEPS" | sed -E 's/\) +.*$/)/' | nl -w1 -s'. '  # name, kind and what, without the arguments
    exit 0
fi
run=${1:?usage: bash scripts/train_default.sh RUN_DIR (or --list)}
extra=()
for s in ${AINN_TRAIN_SET:-}; do extra+=(--set "$s"); done
mkdir -p "$run"

previous=""
while read -r name kind rest; do
    args=$(echo "$rest" | sed -E 's/^.*\) +//')  # what follows the description's "(wall time)"
    bundle="$run/$name-bundle"
    if [ -f "$bundle/bundle.json" ]; then
        echo "have $bundle"
    elif [ "$kind" = train ]; then
        resume=()
        compgen -G "$run/$name/*/latest.pt" > /dev/null && resume=(--resume)
        init=()
        [ -n "$previous" ] && init=(--set "init_bundle=\"$previous\"")
        # shellcheck disable=SC2086  # the table's arguments are words
        ainn train --out "$run/$name" $args "${init[@]}" "${extra[@]}" "${resume[@]}" --export "$bundle"
    else
        set -- $args
        module=$1
        shift
        steps=()
        [ "$module" = prosody ] && [ -n "${AINN_FIT_STEPS:-}" ] && steps=(--steps "$AINN_FIT_STEPS")
        python -m "ainn_cli.train.fit_$module" --bundle "$previous" --out "$bundle" "$@" "${steps[@]}"
    fi
    previous=$bundle
done <<< "$STEPS"
echo "the default model: $previous"
