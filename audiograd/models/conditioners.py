"""Stable Audio's conditioning: the number conditioner (``seconds_start``, ``seconds_total``) and
the assembly of conditioner outputs into the DiT's cross-attention and global inputs, as
stable-audio-tools' ``NumberConditioner``, ``MultiConditioner`` and
``ConditionedDiffusionModelWrapper.get_conditioning_inputs`` do it.
"""
from __future__ import annotations

import math
from typing import Dict, List, Sequence, Tuple

import numpy as np

from .. import nn
from ..tensor import cat
from ..tensor.tensor import Tensor


class LearnedPositionalEmbedding(nn.Module):
    """``x -> [x, sin(2 pi x w), cos(2 pi x w)]`` with learned frequencies ``weights``."""

    def __init__(self, dim: int):
        super().__init__()
        self.weights = nn.Parameter(Tensor(np.random.default_rng(0).standard_normal(dim // 2).astype(np.float32)))

    def forward(self, x: Tensor) -> Tensor:
        x = x.unsqueeze(1)
        freqs = x * self.weights.unsqueeze(0) * (2 * math.pi)
        return cat([x, freqs.sin(), freqs.cos()], dim=-1)


class NumberEmbedder(nn.Module):
    """Fourier features of a number in [0, 1] and a Linear: keys ``embedding.0`` / ``embedding.1``."""

    def __init__(self, features: int, dim: int = 256):
        super().__init__()
        self.features = features
        self.embedding = nn.Sequential(LearnedPositionalEmbedding(dim), nn.Linear(dim + 1, features))

    def forward(self, x: Tensor) -> Tensor:
        return self.embedding(x)


class NumberConditioner(nn.Module):
    """A list of numbers, clamped to [min_val, max_val] and normalised to [0, 1], embedded as one
    token each: returns (embeddings (B, 1, output_dim), mask of ones (B, 1))."""

    def __init__(self, output_dim: int, min_val: float = 0, max_val: float = 1):
        super().__init__()
        if not max_val > min_val:
            raise ValueError(f"number conditioner: max_val ({max_val}) must exceed min_val ({min_val})")
        self.output_dim, self.min_val, self.max_val = output_dim, float(min_val), float(max_val)
        self.embedder = NumberEmbedder(features=output_dim)

    def forward(self, values: Sequence[float]) -> Tuple[Tensor, Tensor]:
        param = next(self.parameters())
        # normalised in the model's precision (stable-audio-tools: in torch's default dtype)
        dtype = param.dtype.np
        floats = np.clip(np.asarray([float(v) for v in values], dtype=dtype), dtype(self.min_val), dtype(self.max_val))
        normalized = (floats - dtype(self.min_val)) / dtype(self.max_val - self.min_val)
        x = Tensor(normalized.astype(dtype), device=param.device)
        embeds = self.embedder(x).unsqueeze(1)
        return embeds, Tensor(np.ones((len(floats), 1), dtype=bool), device=param.device)


def assemble(outputs: Dict[str, Tuple[Tensor, Tensor]], cross_attn_ids: List[str], global_ids: List[str]) -> dict:
    """The DiT's conditioning inputs from conditioner outputs: the cross-attention tokens of
    ``cross_attn_ids`` concatenated along the sequence (with their masks), the global vector of
    ``global_ids`` concatenated along channels (a (B, 1, C) result is squeezed to (B, C))."""
    for key in list(cross_attn_ids) + list(global_ids):
        if key not in outputs:
            raise KeyError(f"conditioning: no conditioner produces {key!r} (have {sorted(outputs)})")
    result = {"cross_attn_cond": None, "cross_attn_mask": None, "global_cond": None}
    if cross_attn_ids:
        tokens, masks = [], []
        for key in cross_attn_ids:
            emb, mask = outputs[key]
            if emb.ndim == 2:
                emb, mask = emb.unsqueeze(1), mask.unsqueeze(1)
            tokens.append(emb)
            masks.append(mask)
        result["cross_attn_cond"] = cat(tokens, dim=1)
        result["cross_attn_mask"] = cat(masks, dim=1)
    if global_ids:
        g = cat([outputs[key][0] for key in global_ids], dim=-1)
        result["global_cond"] = g.squeeze(1) if g.ndim == 3 else g
    return result


__all__ = ["NumberConditioner", "NumberEmbedder", "assemble"]
