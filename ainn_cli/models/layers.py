"""Building blocks shared by the AINN modules. Every tensor is `(B, C, T)` unless noted."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-6


class ConvBlock(nn.Module):
    """Residual `conv -> norm -> (FiLM) -> GELU -> conv`; `(B, C, T) -> (B, C, T)`.

    `norm="instance"` (no affine) strips per-utterance channel statistics, which is what the
    content encoder wants; `norm="group"` keeps them. With `cond_dim > 0`, a FiLM layer scales and
    shifts the hidden channels from a condition vector `(B, cond_dim)`.
    """

    def __init__(self, channels: int, kernel: int, dilation: int = 1, norm: str = "group", cond_dim: int = 0) -> None:
        super().__init__()
        padding = (kernel - 1) // 2 * dilation
        self.conv1 = nn.Conv1d(channels, channels, kernel, padding=padding, dilation=dilation)
        self.conv2 = nn.Conv1d(channels, channels, 1)
        self.norm: nn.Module = (
            nn.InstanceNorm1d(channels, affine=False) if norm == "instance" else nn.GroupNorm(1, channels)
        )
        self.film = nn.Linear(cond_dim, 2 * channels) if cond_dim else None

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm(self.conv1(x))
        if self.film is not None and cond is not None:
            scale, shift = self.film(cond).unsqueeze(-1).chunk(2, dim=1)
            h = h * (1 + scale) + shift
        out: torch.Tensor = x + self.conv2(F.gelu(h))
        return out


def attentive_pool(features: torch.Tensor, scores: torch.Tensor, cue: torch.Tensor | None = None) -> torch.Tensor:
    """Pool `(B, C, T)` over time with softmax(scores `(B, T)`) re-weighted by a cue `(B, T)` -> `(B, C)`."""
    weights = torch.softmax(scores, dim=-1)
    if cue is not None:
        weights = weights * cue
        weights = weights / (weights.sum(dim=-1, keepdim=True) + EPS)
    return torch.einsum("bct,bt->bc", features, weights)


def weighted_mean(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean of `(B, C, T)` over time with non-negative weights `(B, T)` -> `(B, C)`."""
    weights = weights / (weights.sum(dim=-1, keepdim=True) + EPS)
    return torch.einsum("bct,bt->bc", features, weights)


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale  # type: ignore[attr-defined]
        return x.view_as(x)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.scale * grad, None  # type: ignore[attr-defined]


def grad_reverse(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Identity forward, gradient times `-scale` backward (adversarial disentanglement)."""
    out: torch.Tensor = _GradReverse.apply(x, scale)  # type: ignore[no-untyped-call]
    return out
