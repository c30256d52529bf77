"""Whisper's audio encoder (Radford et al., 2022) in torch, frozen: what the reader reads.

    log-mel (B, 80, T100) --conv k3, GELU--> --conv k3 stride 2, GELU--> + sinusoidal positions  (B, T50, D)
        --block 1..L: x + attention(LN(x)), x + MLP(LN(x))--> states after each block (B, T50, D)
        the last block's states also get the final LN (that is the encoder's output, what ASR decodes)

`states(mel, layers)` returns the states after the blocks listed (1..L), side by side `(B, T50, D * n)`,
running no block past the deepest one asked for. The reader reads the middle blocks of tiny.en (2 and 3
of 4): they held the emotion better than the output on the validation speakers of four corpora
(docs/cross_corpus.md). The weights come from a CTranslate2 file (`ct2_names` maps its names); nothing
here is ever trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class WhisperEncoderConfig:
    """Whisper tiny.en's encoder."""

    n_mels: int = 80
    dim: int = 384
    heads: int = 6
    blocks: int = 4
    positions: int = 1500  # 30 s of states


class Block(nn.Module):
    """Pre-LN transformer block `(B, T, D) -> (B, T, D)` (fused q, k, v projection)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.attn_norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (z.view(b, t, self.heads, -1).transpose(1, 2) for z in self.qkv(self.attn_norm(x)).chunk(3, -1))
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d)
        x = x + self.out(attended)
        out: torch.Tensor = x + self.mlp(self.mlp_norm(x))
        return out


class WhisperEncoder(nn.Module):
    """Whisper log-mel `(B, 80, T)` (T even) -> states of chosen blocks `(B, T / 2, D * len(layers))`."""

    def __init__(self, config: WhisperEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.conv1 = nn.Conv1d(config.n_mels, config.dim, 3, padding=1)
        self.conv2 = nn.Conv1d(config.dim, config.dim, 3, stride=2, padding=1)
        self.positions: torch.Tensor
        self.register_buffer("positions", torch.zeros(config.positions, config.dim))
        self.blocks = nn.ModuleList(Block(config.dim, config.heads) for _ in range(config.blocks))
        self.norm = nn.LayerNorm(config.dim)

    def states(self, mel: torch.Tensor, layers: Sequence[int]) -> torch.Tensor:
        """The states after each block in `layers` (1-based; the last block's with the final LN)."""
        if not layers or min(layers) < 1 or max(layers) > self.config.blocks:
            raise ValueError(f"layers must be among 1..{self.config.blocks}, got {list(layers)}")
        x = F.gelu(self.conv2(F.gelu(self.conv1(mel)))).transpose(1, 2)
        if x.shape[1] > self.config.positions:
            raise ValueError(f"{x.shape[1]} states is more than the encoder's {self.config.positions} positions")
        x = x + self.positions[: x.shape[1]].to(x.dtype)
        kept = {}
        for index, block in enumerate(self.blocks[: max(layers)], start=1):
            x = block(x)
            kept[index] = self.norm(x) if index == self.config.blocks else x
        return torch.cat([kept[i] for i in layers], dim=-1)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """The encoder's output `(B, T / 2, D)` (what the decoder reads)."""
        return self.states(mel, [self.config.blocks])


def ct2_names(config: WhisperEncoderConfig) -> dict[str, str]:
    """This module's parameter and buffer names -> a CTranslate2 Whisper model's (under `encoder/`)."""
    names = {"conv1.weight": "conv1/weight", "conv1.bias": "conv1/bias", "conv2.weight": "conv2/weight",
             "conv2.bias": "conv2/bias", "positions": "position_encodings/encodings", "norm.weight": "layer_norm/gamma",
             "norm.bias": "layer_norm/beta"}
    parts = {"attn_norm": "self_attention/layer_norm", "qkv": "self_attention/linear_0",
             "out": "self_attention/linear_1", "mlp_norm": "ffn/layer_norm", "mlp.0": "ffn/linear_0",
             "mlp.2": "ffn/linear_1"}
    for i in range(config.blocks):
        for ours, theirs in parts.items():
            norm = ours.endswith("norm")
            names[f"blocks.{i}.{ours}.weight"] = f"layer_{i}/{theirs}/{'gamma' if norm else 'weight'}"
            names[f"blocks.{i}.{ours}.bias"] = f"layer_{i}/{theirs}/{'beta' if norm else 'bias'}"
    return names


def from_ct2(variables: dict[str, np.ndarray], config: WhisperEncoderConfig) -> dict[str, torch.Tensor]:
    """This module's state dict from a CTranslate2 Whisper model's `encoder/...` variables (float32)."""
    names = ct2_names(config)
    missing = sorted(f"encoder/{v}" for v in names.values() if f"encoder/{v}" not in variables)
    if missing:
        raise KeyError(f"the CTranslate2 file lacks {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    return {ours: torch.from_numpy(np.asarray(variables[f"encoder/{theirs}"], dtype=np.float32).copy())
            for ours, theirs in names.items()}
