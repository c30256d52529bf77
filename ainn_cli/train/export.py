"""Turn a trained run into a bundle: strength calibration, emotion prototypes, the vocoder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ainn_cli.bundle import BundleInfo, Calibration, save_bundle
from ainn_cli.errors import UsageError
from ainn_cli.models.vocoder import HifiGan, VocoderConfig
from ainn_cli.train.data import Corpus
from ainn_cli.train.nets import Nets
from ainn_cli.train.official_vocoder import official_state_dict

CALIBRATION_HIGH_PERCENTILE = 90  # raw Rs of the strongest renditions that maps to strength 1


@torch.no_grad()
def read_corpus(nets: Nets, corpus: Corpus) -> tuple[np.ndarray, np.ndarray]:
    """Raw Rs `(N,)` and unit emotion embeddings `(N, E)` of every utterance (cue of its true label)."""
    nets.eval()
    strengths, embeddings = [], []
    for mel, label in zip(corpus.mels, corpus.label_ids):
        x = torch.from_numpy(mel).unsqueeze(0)
        rec = nets.recognizer(x, torch.tensor([label]))
        strengths.append(float(rec.strength[0]))
        embeddings.append(nets.emotion(x, rec.cue)[0].numpy())
    return np.array(strengths), np.stack(embeddings)


def calibrate(corpus: Corpus, strengths: np.ndarray) -> Calibration:
    """Per emotion: median raw Rs of neutral speech -> 0, 90th percentile of the emotion -> 1. The neutral
    speech is that of the speakers who also act emotions (the zero of the scale their takes define); read
    speech of speakers with no emotional take (LibriSpeech) counts only when there is no other."""
    ids = corpus.label_ids
    neutral = strengths[_neutral_rows(corpus)]
    low_value = float(np.median(neutral)) if len(neutral) else 0.0
    low, high = {}, {}
    for k, label in enumerate(corpus.labels[1:], start=1):
        values = strengths[ids == k]
        if len(values):
            low[label] = low_value
            high[label] = max(float(np.percentile(values, CALIBRATION_HIGH_PERCENTILE)), low_value + 1e-3)
    return Calibration(low=low, high=high)


def _neutral_rows(corpus: Corpus) -> np.ndarray:
    """`(N,)` bool: the neutral utterances of speakers who also act emotions, or every neutral one if none do."""
    neutral: np.ndarray = corpus.label_ids == 0
    acted = neutral & corpus.acting()
    return acted if acted.any() else neutral


def prototypes(corpus: Corpus, embeddings: np.ndarray) -> dict[str, list[float]]:
    """Mean unit embedding per emotion, renormalised; neutral's from the same speech as the calibration's zero."""
    out = {}
    for k, label in enumerate(corpus.labels):
        rows = embeddings[_neutral_rows(corpus) if k == 0 else corpus.label_ids == k]
        if len(rows):
            mean = rows.mean(axis=0)
            out[label] = [round(float(v), 6) for v in mean / (np.linalg.norm(mean) + 1e-9)]
    return out


def export_bundle(nets: Nets, corpus: Corpus, out_dir: Path, name: str, metadata: dict[str, Any],
                  vocoder_state: dict[str, torch.Tensor] | None = None) -> Path:
    """Write a complete bundle from trained nets; the vocoder is the official HiFi-GAN unless given."""
    if not corpus.utterances:
        raise UsageError("cannot export: no utterances to calibrate strength on")
    strengths, embeddings = read_corpus(nets, corpus)
    vocoder = HifiGan(VocoderConfig())
    vocoder.load_state_dict(vocoder_state if vocoder_state is not None else official_state_dict())
    info = BundleInfo(name=name, labels=corpus.labels, calibration=calibrate(corpus, strengths),
                      prototypes=prototypes(corpus, embeddings), metadata=metadata)
    return save_bundle(out_dir, info, {**nets.components(), "vocoder": vocoder})
