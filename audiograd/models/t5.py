"""T5's encoder (the text encoder of Stable Audio Open's prompt conditioning), with the
architecture and state-dict keys of transformers' ``T5EncoderModel``, read from a local Hugging
Face folder (config.json plus model.safetensors or pytorch_model.bin, read without running
pickle code)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .. import nn
from ..nn import functional as F
from ..tensor.tensor import Tensor
from .checkpoint import load_state

_SIZES = ("d_model", "d_kv", "d_ff", "num_heads", "num_layers", "vocab_size")
_DEFAULTS = {"relative_attention_num_buckets": 32, "relative_attention_max_distance": 128,
             "layer_norm_epsilon": 1e-6, "feed_forward_proj": "relu"}  # transformers' T5Config defaults
MAX_PARAMETERS = 2e10  # t5-11b's encoder has about 5e9: a larger config.json is a hostile one


def read_t5_config(source) -> dict:
    """The encoder's sizes from a Hugging Face T5 config.json (path or dict), checked: a missing
    or mistyped key is one ``ValueError`` naming the key and the file."""
    where = str(source) if isinstance(source, (str, Path)) else "T5 config"
    if isinstance(source, (str, Path)):
        try:
            with open(source, "rb") as f:
                source = json.loads(f.read().decode("utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"T5 config not found: {where}") from None
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise ValueError(f"{where}: not a JSON config ({type(e).__name__}: {e})") from None
    if not isinstance(source, dict):
        raise ValueError(f"{where}: a T5 config is a JSON object, got {type(source).__name__}")
    cfg = dict(_DEFAULTS)
    cfg.update({k: source[k] for k in source if k in cfg or k in _SIZES})
    for key in _SIZES + ("relative_attention_num_buckets", "relative_attention_max_distance"):
        if key not in cfg:
            raise ValueError(f"{where}: missing key {key!r} (a positive integer)")
        value = cfg[key]
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{where}: {key} must be a positive integer, got {value!r}")
    buckets, distance = cfg["relative_attention_num_buckets"], cfg["relative_attention_max_distance"]
    if buckets < 4 or distance <= buckets // 4:  # the logarithmic buckets need both
        raise ValueError(f"{where}: relative_attention_num_buckets {buckets} (at least 4) and "
                         f"relative_attention_max_distance {distance} (more than a quarter of it) do not fit")
    eps = cfg["layer_norm_epsilon"]
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
        raise ValueError(f"{where}: layer_norm_epsilon must be a number in (0, 1), got {eps!r}")
    act = cfg["feed_forward_proj"]
    if not isinstance(act, str) or act not in ("relu", "gated-gelu"):
        raise ValueError(f"{where}: feed_forward_proj {act!r} is not supported (\"relu\" as in t5-small/base/large, "
                         "or \"gated-gelu\" as in t5 v1.1 and flan-t5)")
    params = _parameter_count(cfg)
    if params > MAX_PARAMETERS:
        raise ValueError(f"{where}: the sizes ask for {params:.3g} encoder parameters (more than any T5; "
                         f"limit {MAX_PARAMETERS:.0e})")
    return cfg


def _parameter_count(cfg: dict) -> int:
    inner = cfg["num_heads"] * cfg["d_kv"]
    ff = cfg["d_ff"] * cfg["d_model"] * (3 if cfg["feed_forward_proj"].startswith("gated") else 2)
    return cfg["vocab_size"] * cfg["d_model"] + cfg["num_layers"] * (4 * inner * cfg["d_model"] + ff)


def relative_position_buckets(length: int, num_buckets: int, max_distance: int) -> np.ndarray:
    """T5's bidirectional bucket of every (query, key) offset, (length, length) int64: exact for
    small offsets, logarithmic up to ``max_distance``; computed in float32 as transformers does."""
    pos = np.arange(length)
    rel = pos[None, :] - pos[:, None]
    half = num_buckets // 2
    buckets = (rel > 0).astype(np.int64) * half
    rel = np.abs(rel)
    exact = half // 2
    with np.errstate(divide="ignore"):
        scaled = (np.log(rel.astype(np.float32) / np.float32(exact)) / np.float32(math.log(max_distance / exact))
                  * np.float32(half - exact))
    large = np.minimum(exact + np.where(rel >= exact, scaled, 0).astype(np.int64), half - 1)
    return buckets + np.where(rel < exact, rel, large)


class T5LayerNorm(nn.Module):
    """Scale-only RMS norm: ``weight * x / sqrt(mean(x^2) + eps)`` (no mean, no bias). The
    reference computes the mean square in float32 even for half weights; audiograd's floating
    types are float32 and float64, so the model's own dtype is always at least that wide."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(Tensor(np.ones(dim, np.float32)))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return self.weight * (x * ((x * x).mean(-1, keepdim=True) + self.eps).rsqrt())


class _Table(nn.Module):
    """An embedding table read on the host: rows are gathered there for known integer ids."""

    def __init__(self, rows: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(Tensor(np.zeros((rows, dim), np.float32)))

    def rows(self, ids: np.ndarray) -> Tensor:
        node = self.weight.node
        if getattr(self, "_host", (None,))[0] is not node:  # a host copy per weight value
            object.__setattr__(self, "_host", (node, self.weight.numpy()))
        table = self._host[1]
        if ids.size and (ids.min() < 0 or ids.max() >= table.shape[0]):
            raise ValueError(f"token id out of range: ids span {ids.min()}..{ids.max()}, the table has "
                             f"{table.shape[0]} rows")
        return Tensor(table[ids], device=self.weight.device)


class T5Attention(nn.Module):
    """Multi-head self-attention without biases or score scaling; the first layer holds the
    relative position bias table (buckets x heads)."""

    def __init__(self, cfg: dict, has_bias: bool):
        super().__init__()
        inner = cfg["num_heads"] * cfg["d_kv"]
        self.heads = cfg["num_heads"]
        self.q, self.k, self.v = (nn.Linear(cfg["d_model"], inner, bias=False) for _ in range(3))
        self.o = nn.Linear(inner, cfg["d_model"], bias=False)
        if has_bias:
            self.relative_attention_bias = _Table(cfg["relative_attention_num_buckets"], cfg["num_heads"])

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        b, n, _ = x.shape
        split = lambda t: t.reshape(b, n, self.heads, -1).permute(0, 2, 1, 3)  # noqa: E731
        # T5 does not scale the scores by 1/sqrt(d): its initialisation accounts for it
        out = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)), split(self.v(x)),
                                             attn_mask=bias, scale=1.0)
        return self.o(out.permute(0, 2, 1, 3).reshape(b, n, -1))


class T5SelfAttentionLayer(nn.Module):
    """Pre-norm self-attention with a residual connection."""

    def __init__(self, cfg: dict, has_bias: bool):
        super().__init__()
        self.SelfAttention = T5Attention(cfg, has_bias)
        self.layer_norm = T5LayerNorm(cfg["d_model"], cfg["layer_norm_epsilon"])

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        return x + self.SelfAttention(self.layer_norm(x), bias)


class T5DenseReluDense(nn.Module):
    """The feed-forward of t5-small/base/large: ``wo(relu(wi(x)))``."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.wi = nn.Linear(cfg["d_model"], cfg["d_ff"], bias=False)
        self.wo = nn.Linear(cfg["d_ff"], cfg["d_model"], bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.wo(F.relu(self.wi(x)))


class T5DenseGatedGelu(nn.Module):
    """The feed-forward of t5 v1.1 and flan-t5: ``wo(gelu_tanh(wi_0(x)) * wi_1(x))`` (its keys
    stay under ``DenseReluDense``, as in transformers)."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.wi_0 = nn.Linear(cfg["d_model"], cfg["d_ff"], bias=False)
        self.wi_1 = nn.Linear(cfg["d_model"], cfg["d_ff"], bias=False)
        self.wo = nn.Linear(cfg["d_ff"], cfg["d_model"], bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.wo(F.gelu(self.wi_0(x), approximate="tanh") * self.wi_1(x))


class T5FeedForwardLayer(nn.Module):
    """Pre-norm feed-forward with a residual connection."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.DenseReluDense = T5DenseReluDense(cfg) if cfg["feed_forward_proj"] == "relu" else T5DenseGatedGelu(cfg)
        self.layer_norm = T5LayerNorm(cfg["d_model"], cfg["layer_norm_epsilon"])

    def forward(self, x: Tensor) -> Tensor:
        return x + self.DenseReluDense(self.layer_norm(x))


class T5Block(nn.Module):
    """One encoder layer: self-attention then feed-forward."""

    def __init__(self, cfg: dict, first: bool):
        super().__init__()
        self.layer = nn.ModuleList([T5SelfAttentionLayer(cfg, first), T5FeedForwardLayer(cfg)])

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        return self.layer[1](self.layer[0](x, bias))


class T5Stack(nn.Module):
    """The encoder's layers and final norm (the ``encoder.`` keys)."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.block = nn.ModuleList([T5Block(cfg, i == 0) for i in range(cfg["num_layers"])])
        self.final_layer_norm = T5LayerNorm(cfg["d_model"], cfg["layer_norm_epsilon"])


class T5Encoder(nn.Module):
    """``T5EncoderModel``: ``(input_ids, attention_mask)`` (numpy, (B, L)) -> last hidden state
    (B, L, d_model). Masked keys get the dtype's lowest value added to their scores, as in
    transformers; the relative position bias of the first layer is shared by all layers."""

    def __init__(self, config):
        super().__init__()
        self.cfg = read_t5_config(config)
        self.shared = _Table(self.cfg["vocab_size"], self.cfg["d_model"])
        self.encoder = T5Stack(self.cfg)

    def _bias(self, mask: np.ndarray, length: int) -> Tensor:
        cfg = self.cfg
        table = self.encoder.block[0].layer[0].SelfAttention.relative_attention_bias
        buckets = relative_position_buckets(length, cfg["relative_attention_num_buckets"],
                                            cfg["relative_attention_max_distance"])
        position = table.rows(buckets).permute(2, 0, 1).unsqueeze(0)  # (1, H, L, L)
        dtype = position.dtype.np
        padded = (1.0 - mask[:, None, None, :].astype(dtype)) * np.finfo(dtype).min
        return position + Tensor(padded.astype(dtype), device=position.device)

    def forward(self, input_ids, attention_mask=None) -> Tensor:
        ids = np.asarray(input_ids)
        if ids.ndim != 2 or ids.dtype.kind not in "iu":
            raise ValueError(f"T5Encoder: input_ids must be an integer array (batch, length), got {ids.dtype} {ids.shape}")
        mask = np.ones(ids.shape, bool) if attention_mask is None else np.asarray(attention_mask).astype(bool)
        if mask.shape != ids.shape:
            raise ValueError(f"T5Encoder: attention_mask {mask.shape} does not match input_ids {ids.shape}")
        x = self.shared.rows(ids.astype(np.int64))
        bias = self._bias(mask, ids.shape[1])
        for block in self.encoder.block:
            x = block(x, bias)
        return self.encoder.final_layer_norm(x)

    @classmethod
    def random(cls, config, seed: int = 0) -> "T5Encoder":
        """An encoder of ``config``'s sizes (a dict or config.json path) with seeded random
        weights at realistic scales: runs without T5's files (see ``random_init``)."""
        from .random_init import seeded_state
        model = cls(config)
        model.load_state_dict(seeded_state({k: p.shape for k, p in model.named_parameters()}, seed))
        return model

    @classmethod
    def from_pretrained(cls, folder, dtype=None, half_weights: bool = False) -> "T5Encoder":
        """Load the encoder of a local T5 folder: config.json and model.safetensors or
        pytorch_model.bin, read by the safe readers (a whole T5's decoder and head are ignored;
        ``encoder.embed_tokens.weight`` stands for ``shared.weight``). ``half_weights`` rounds
        every weight to float16 and back, as stable-audio-tools' conditioner holds them;
        ``dtype`` (e.g. ``audiograd.float64``) casts the model after loading."""
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"T5 folder not found: {folder}")
        model = cls(folder / "config.json")
        weights = next((folder / n for n in ("model.safetensors", "pytorch_model.bin") if (folder / n).is_file()), None)
        if weights is None:
            raise FileNotFoundError(f"{folder}: no model.safetensors or pytorch_model.bin (T5's weights)")
        model.load_state_dict(_encoder_state(load_state(weights), model, weights, half_weights))
        return model.to(dtype=dtype) if dtype is not None else model


def _encoder_state(state: dict, model: T5Encoder, source, half_weights: bool) -> dict:
    """The encoder's weights from a T5 state dict, with missing or unexpected encoder keys named."""
    state = dict(state)
    alias = state.pop("encoder.embed_tokens.weight", None)
    if "shared.weight" not in state and alias is not None:
        state["shared.weight"] = alias
    wanted = model.state_dict()
    missing = sorted(k for k in wanted if k not in state)
    unexpected = sorted(k for k in state if k.startswith(("encoder.", "shared.")) and k not in wanted)
    if missing or unexpected:
        raise ValueError(f"{source}: the T5 encoder's weights do not match config.json: "
                         + "; ".join(f"{what} {_few(keys)}" for what, keys in
                                     (("missing", missing), ("unexpected", unexpected)) if keys))
    values = {}
    for key, target in wanted.items():
        value = state[key]
        if not np.issubdtype(value.dtype, np.floating):
            raise ValueError(f"{source}: {key} holds {value.dtype} values, not floating-point weights")
        if tuple(value.shape) != tuple(target.shape):
            raise ValueError(f"{source}: {key} has shape {tuple(value.shape)}, config.json asks for {tuple(target.shape)}")
        values[key] = value.astype(np.float16).astype(np.float32) if half_weights else value
    return values


def _few(keys, shown: int = 5) -> str:
    return ", ".join(keys[:shown]) + (f" and {len(keys) - shown} more" if len(keys) > shown else "")


def seeded_t5(config: dict, seed: int = 0) -> T5Encoder:
    """``T5Encoder.random``, as a function."""
    return T5Encoder.random(config, seed)


T5_BASE = {"d_model": 768, "d_kv": 64, "d_ff": 3072, "num_heads": 12, "num_layers": 12, "vocab_size": 32128,
           "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128,
           "layer_norm_epsilon": 1e-6, "feed_forward_proj": "relu"}

__all__ = ["T5Encoder", "read_t5_config", "relative_position_buckets", "seeded_t5", "T5_BASE"]
