"""Refit R's category head Rc on whole training utterances, after `--stage recognizer` (`refit_head` > 0).

R trains on crops (`data.segment_frames`, about 1.5 s) but reads whole recordings, silences included, and
its crop-trained head drifts from checkpoint to checkpoint (one class or another collapses on unseen
speakers). Rc is linear over the time-averaged trunk features, so refitting it on whole utterances is a
convex problem with one answer: class-balanced multinomial logistic regression with an L2 penalty,

    min_W,b  sum_i w_i CE(W f_i + b, y_i) / sum_i w_i  +  l2 |W|^2

solved by L-BFGS. Each class weighs 1/K in all. Within the neutral class, when the corpus has both, the
neutral takes of speakers who also act emotions (RAVDESS) and the read speech of speakers who never do
(LibriSpeech) weigh half each. Fitted on RAVDESS alone, R read 280 of the 351 LibriSpeech utterances (all
neutral) as angry; with the read speech in the plain class balance, its utterances outnumber the acted neutral
takes four to one and those are read as emotional instead. Only Rc's weights move; the trunk, and with it Rs
and the cue's feature maps, stay.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ainn_cli.files import replace_file
from ainn_cli.models.recognizer import Recognizer
from ainn_cli.train.data import Corpus

LBFGS_STEPS = 500


@torch.no_grad()
def pooled_features(recognizer: Recognizer, corpus: Corpus) -> torch.Tensor:
    """Time-averaged trunk features of every whole utterance, as Rc reads them: `(N, C)`."""
    device = next(recognizer.parameters()).device
    rows = [recognizer.features(torch.from_numpy(mel).unsqueeze(0).to(device)).mean(dim=-1)[0] for mel in corpus.mels]
    return torch.stack(rows).float().cpu()


def sample_weights(labels: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Weights `(N,)` of utterances with labels and group ids `(N,)`: each label's utterances weigh the same in
    all, and split that equally among the groups present in it (uniform within a group)."""
    weights = torch.zeros(len(labels))
    for label in torch.unique(labels):
        in_label = labels == label
        present = torch.unique(groups[in_label])
        for group in present:
            rows = in_label & (groups == group)
            weights[rows] = 1.0 / (len(present) * int(rows.sum()))
    return weights


def acting_groups(corpus: Corpus) -> torch.Tensor:
    """`(N,)`: 1 for utterances of speakers who act at least one emotion, 0 for speakers with neutral speech only."""
    return torch.from_numpy(corpus.acting().astype(np.int64))


def fit_head(features: torch.Tensor, labels: torch.Tensor, classes: int, l2: float,
             groups: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Balanced L2 logistic regression (`sample_weights`; one group when `groups` is None): features `(N, C)`,
    labels `(N,)` -> weight `(K, C)`, bias `(K,)`."""
    balance = sample_weights(labels, torch.zeros_like(labels) if groups is None else groups)
    weight = torch.zeros(classes, features.shape[1], requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    solver = torch.optim.LBFGS([weight, bias], max_iter=LBFGS_STEPS, line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        solver.zero_grad()
        per_utterance = F.cross_entropy(features @ weight.T + bias, labels, reduction="none")
        loss = (per_utterance * balance).sum() / balance.sum() + l2 * weight.pow(2).sum()
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    with torch.enable_grad():
        solver.step(objective)  # type: ignore[no-untyped-call]
    return weight.detach(), bias.detach()


def refit_head(recognizer: Recognizer, corpus: Corpus, l2: float) -> float:
    """Replace Rc's weights in place by the whole-utterance fit; returns the training accuracy."""
    features = pooled_features(recognizer, corpus)
    labels = torch.from_numpy(corpus.label_ids).long()
    weight, bias = fit_head(features, labels, len(corpus.labels), l2, acting_groups(corpus))
    with torch.no_grad():
        recognizer.classifier.weight.copy_(weight.to(recognizer.classifier.weight))
        recognizer.classifier.bias.copy_(bias.to(recognizer.classifier.bias))
    return float(((features @ weight.T + bias).argmax(dim=-1) == labels).float().mean())


def save_refit(state: dict[str, torch.Tensor], file: Path, accuracy: float) -> Path:
    """A checkpoint holding the refitted weights (what `export` and `--init` read)."""
    replace_file(file, lambda tmp: torch.save({"nets": state, "refit_accuracy": accuracy}, tmp))
    return file
