"""The `adv` loss: an emotion-conditioned critic on mel segments, trained only while G trains (reshape variant).

G's conversion of a neutral take must look, to a critic that is told the target emotion, like the real
takes of that emotion; R alone can be satisfied by small spectral changes (the paper's ecc/esc). The critic
is a projection discriminator (Miyato & Koyama 2018) with least-squares targets (Mao et al. 2017):

    h_t   = convolutions(mel) (B, C, T')                score_t = w . h_t + embed(label) . h_t
    critic loss  (score(real) - 1)^2 + score(fake)^2     G's loss  (score(fake) - 1)^2, averaged over t

Real segments are the reference takes of the parallel batch (the same actor, emotion and intensity as the
target, the other sentence: natural timing, not DTW-warped), fakes are G's conversions of the neutral takes.
Both players share one optimiser step: `adv` is G's term plus the critic's, and each player's weights see
only the gradient of its own term (G's term reads the critic through detached weights; the critic reads
the conversion detached). Adam's step does not depend on the scale of a gradient, so the `adv` weight
sets how hard G is pushed, not how fast the critic learns. The critic is never part of a bundle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

NEGATIVE_SLOPE = 0.2


@dataclass(frozen=True)
class CriticConfig:
    n_mels: int = 80
    channels: int = 128
    classes: int = 5


class Critic(nn.Module):
    """Per-frame realism scores `(B, T')` of log-mels `(B, 80, T)` given emotion labels `(B,)`."""

    def __init__(self, config: CriticConfig) -> None:
        super().__init__()
        c = config.channels
        self.convs = nn.ModuleList([
            nn.Conv1d(config.n_mels, c, 5, padding=2),
            nn.Conv1d(c, c, 5, stride=2, padding=2),
            nn.Conv1d(c, c, 5, stride=2, padding=2),
            nn.Conv1d(c, c, 3, padding=1),
        ])
        self.out = nn.Conv1d(c, 1, 1)
        self.embed = nn.Embedding(config.classes, c)
        for weight in (self.out.weight, self.out.bias, self.embed.weight):  # scores start at 0: G feels nothing
            nn.init.zeros_(cast(torch.Tensor, weight))  # until the critic has learnt something

    def forward(self, mel: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        h = mel
        for conv in self.convs:
            h = F.leaky_relu(conv(h), NEGATIVE_SLOPE)
        scores: torch.Tensor = self.out(h).squeeze(1) + torch.einsum("bct,bc->bt", h, self.embed(label))
        return scores


def critic_losses(critic: Critic, real: torch.Tensor, fake: torch.Tensor,
                  label: torch.Tensor) -> dict[str, torch.Tensor]:
    """`adv` (what training minimises: G's term + the critic's) and, for the log, `adv_g` and `adv_d` alone.
    real, fake `(B, 80, T)`, label `(B,)`."""
    frozen = {name: p.detach() for name, p in critic.named_parameters()}
    fooled = functional_call(critic, frozen, (fake, label))
    g_term = (fooled - 1).pow(2).mean()
    d_term = (critic(real, label) - 1).pow(2).mean() + critic(fake.detach(), label).pow(2).mean()
    return {"adv": g_term + d_term, "adv_g": g_term.detach(), "adv_d": d_term.detach()}
