"""Refit R's category head Rc on whole training utterances, after `--stage recognizer` (`refit_head` > 0).

R trains on crops (`data.segment_frames`, about 1.5 s) but reads whole recordings, silences included, and
its crop-trained head drifts from checkpoint to checkpoint (one class or another collapses on unseen
speakers). Rc is linear over the time-averaged trunk features, so refitting it on whole utterances is a
convex problem with one answer: class-balanced multinomial logistic regression with an L2 penalty,

    min_W,b  sum_i w_y(i) CE(W f_i + b, y_i) / sum_i w_y(i)  +  l2 |W|^2,   w_k = N / (K N_k)

solved by L-BFGS. Only Rc's weights move; the trunk, and with it Rs and the cue's feature maps, stay.
"""

from __future__ import annotations

from pathlib import Path

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


def fit_head(features: torch.Tensor, labels: torch.Tensor, classes: int,
             l2: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-balanced L2 logistic regression: features `(N, C)`, labels `(N,)` -> weight `(K, C)`, bias `(K,)`."""
    counts = torch.bincount(labels, minlength=classes).float()
    balance = counts.sum() / (classes * counts.clamp(min=1))
    weight = torch.zeros(classes, features.shape[1], requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    solver = torch.optim.LBFGS([weight, bias], max_iter=LBFGS_STEPS, line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        solver.zero_grad()
        loss = F.cross_entropy(features @ weight.T + bias, labels, weight=balance) + l2 * weight.pow(2).sum()
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    with torch.enable_grad():
        solver.step(objective)  # type: ignore[no-untyped-call]
    return weight.detach(), bias.detach()


def refit_head(recognizer: Recognizer, corpus: Corpus, l2: float) -> float:
    """Replace Rc's weights in place by the whole-utterance fit; returns the training accuracy."""
    features = pooled_features(recognizer, corpus)
    labels = torch.from_numpy(corpus.label_ids).long()
    weight, bias = fit_head(features, labels, len(corpus.labels), l2)
    with torch.no_grad():
        recognizer.classifier.weight.copy_(weight.to(recognizer.classifier.weight))
        recognizer.classifier.bias.copy_(bias.to(recognizer.classifier.bias))
    return float(((features @ weight.T + bias).argmax(dim=-1) == labels).float().mean())


def save_refit(state: dict[str, torch.Tensor], file: Path, accuracy: float) -> Path:
    """A checkpoint holding the refitted weights (what `export` and `--init` read)."""
    replace_file(file, lambda tmp: torch.save({"nets": state, "refit_accuracy": accuracy}, tmp))
    return file
