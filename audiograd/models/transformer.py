"""stable-audio-tools' ``ContinuousTransformer``: pre-norm blocks of rotary self-attention,
cross-attention to conditioning tokens and a GLU feed-forward, with the same constructor
arguments and state-dict keys, so Stable Audio Open's weights load unchanged.
"""
from __future__ import annotations

import numpy as np

from .. import nn
from ..nn import functional as F
from ..tensor import cat
from ..tensor.creation import ones, zeros
from ..tensor.tensor import Tensor

# options of stable-audio-tools' transformer that change the computation and that audiograd does
# not implement; each is refused with its name instead of being silently ignored
_BLOCK_UNSUPPORTED = {"conformer": False, "remove_norms": False, "add_rope": False, "causal": False}
_ATTN_UNSUPPORTED = {"differential": False, "feat_scale": False, "causal": False}
_TRANSFORMER_UNSUPPORTED = {"causal": False, "conformer": False, "use_sinusoidal_emb": False,
                            "use_abs_pos_emb": False, "sliding_window": None}


def refuse(options: dict, unsupported: dict, where: str) -> None:
    """Raise NotImplementedError naming the first option set to a value audiograd cannot run."""
    for key, default in unsupported.items():
        if options.get(key, default) != default:
            raise NotImplementedError(f"{where}: option {key}={options[key]!r} is not supported by audiograd")


def split_last(x: Tensor, parts: int) -> list:
    """``x.chunk(parts, dim=-1)`` for a last dim divisible by ``parts``."""
    n = x.shape[-1] // parts
    return [x[..., i * n:(i + 1) * n] for i in range(parts)]


def heads(x: Tensor, h: int) -> Tensor:
    """(b, n, h*d) -> (b, h, n, d)."""
    b, n, hd = x.shape
    return x.reshape(b, n, h, hd // h).permute(0, 2, 1, 3)


class LayerNorm(nn.Module):
    """stable-audio-tools' bias-less LayerNorm: a learned ``gamma`` and a zero ``beta`` buffer."""

    def __init__(self, dim: int, bias: bool = False, fix_scale: bool = False, force_fp32: bool = False,
                 eps: float = 1e-5):
        super().__init__()
        if fix_scale:
            self.register_buffer("gamma", ones(dim))
        else:
            self.gamma = nn.Parameter(ones(dim))
        if bias:
            self.beta = nn.Parameter(zeros(dim))
        else:
            self.register_buffer("beta", zeros(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, x.shape[-1:], self.gamma, self.beta, self.eps)


class RotaryEmbedding(nn.Module):
    """Rotary position angles ``positions x inv_freq``, duplicated to the rotated width.

    ``inv_freq`` is a persistent buffer (it is in SAO's checkpoints) computed in float32, as
    stable-audio-tools computes it; the angles are float32 in float32 models."""

    def __init__(self, dim: int, base: float = 10000.0):
        super().__init__()
        exponent = np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim)
        self.register_buffer("inv_freq", Tensor(np.float32(1.0) / np.float32(base) ** exponent))

    def angles(self, seq_len: int) -> np.ndarray:
        """(seq_len, dim) angles on the host, in the buffer's precision."""
        inv = self.inv_freq.numpy()
        freqs = np.outer(np.arange(seq_len, dtype=inv.dtype), inv)
        return np.concatenate([freqs, freqs], axis=-1)


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate the first ``cos.shape[-1]`` features of ``x`` (b, h, n, d) pairwise by the angles;
    the rest pass unchanged (partial rotary, as stable-audio-tools applies it)."""
    rot = cos.shape[-1]
    t, rest = x[..., :rot], x[..., rot:]
    x1, x2 = t[..., :rot // 2], t[..., rot // 2:]
    turned = cat([-x2, x1], dim=-1)
    out = t * cos + turned * sin
    return cat([out, rest], dim=-1) if x.shape[-1] > rot else out


class Attention(nn.Module):
    """Multi-head attention with stable-audio-tools' projections: fused ``to_qkv`` for
    self-attention, ``to_q`` + ``to_kv`` against a context of another width (whose fewer heads
    are shared by consecutive query heads, as its ``repeat_interleave`` does)."""

    def __init__(self, dim: int, dim_heads: int = 64, dim_context=None, causal: bool = False,
                 zero_init_output: bool = True, qk_norm: str = "none", differential: bool = False,
                 feat_scale: bool = False):
        super().__init__()
        refuse({"differential": differential, "feat_scale": feat_scale, "causal": causal}, _ATTN_UNSUPPORTED,
               "Attention")
        if qk_norm not in ("l2", "ln", "none"):
            raise NotImplementedError(f"Attention: qk_norm={qk_norm!r} is not supported (use 'ln', 'l2' or 'none')")
        self.dim, self.dim_heads = dim, dim_heads
        dim_kv = dim_context if dim_context is not None else dim
        self.num_heads, self.kv_heads = dim // dim_heads, dim_kv // dim_heads
        if dim_context is not None:
            self.to_q = nn.Linear(dim, dim, bias=False)
            self.to_kv = nn.Linear(dim_kv, dim_kv * 2, bias=False)
        else:
            self.to_qkv = nn.Linear(dim, dim * 3, bias=False)
        self.to_out = nn.Linear(dim, dim, bias=False)
        self.qk_norm = qk_norm
        if qk_norm == "ln":
            self.q_norm = nn.LayerNorm(dim_heads, eps=1e-6)
            self.k_norm = nn.LayerNorm(dim_heads, eps=1e-6)

    def _share_kv_heads(self, t: Tensor) -> Tensor:
        if self.kv_heads == self.num_heads:
            return t
        b, kvh, n, d = t.shape
        r = self.num_heads // kvh
        return t.unsqueeze(2).expand(b, kvh, r, n, d).reshape(b, kvh * r, n, d)

    def forward(self, x: Tensor, context=None, rotary=None) -> Tensor:
        if context is not None:
            q = heads(self.to_q(x), self.num_heads)
            k, v = (heads(t, self.kv_heads) for t in split_last(self.to_kv(context), 2))
        else:
            q, k, v = (heads(t, self.num_heads) for t in split_last(self.to_qkv(x), 3))
        if self.qk_norm == "l2":
            q = q / q.pow(2).sum(-1, keepdim=True).sqrt().clamp(min=1e-12)
            k = k / k.pow(2).sum(-1, keepdim=True).sqrt().clamp(min=1e-12)
        elif self.qk_norm == "ln":
            q, k = self.q_norm(q), self.k_norm(k)
        if rotary is not None:
            # stable-audio-tools rotates in float32 whatever the model's precision; audiograd
            # rotates in the model's precision, so a float64 model is float64 throughout
            cos, sin = rotary
            q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        k, v = self._share_kv_heads(k), self._share_kv_heads(v)
        out = F.scaled_dot_product_attention(q, k, v)
        b, h, n, d = out.shape
        return self.to_out(out.permute(0, 2, 1, 3).reshape(b, n, h * d))


class GLU(nn.Module):
    """Linear to twice the width, then ``value * silu(gate)``."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: Tensor) -> Tensor:
        value, gate = split_last(self.proj(x), 2)
        return value * F.silu(gate)


class FeedForward(nn.Module):
    """SwiGLU feed-forward (``ff.0`` GLU, ``ff.2`` output Linear), keys as stable-audio-tools'."""

    def __init__(self, dim: int, dim_out=None, mult: float = 4, no_bias: bool = False, glu: bool = True,
                 use_conv: bool = False, conv_kernel_size: int = 3, zero_init_output: bool = True):
        super().__init__()
        if not glu or use_conv:
            raise NotImplementedError("FeedForward: only the GLU feed-forward without convolutions is supported")
        inner = int(dim * mult)
        self.ff = nn.Sequential(GLU(dim, inner), nn.Identity(),
                                nn.Linear(inner, dim if dim_out is None else dim_out, bias=not no_bias), nn.Identity())

    def forward(self, x: Tensor) -> Tensor:
        return self.ff(x)


class LayerScale(nn.Module):
    def __init__(self, dim: int, init_val: float = 1e-5):
        super().__init__()
        self.scale = nn.Parameter(ones(dim) * init_val)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


class TransformerBlock(nn.Module):
    """Pre-norm residual block: self-attention, optional cross-attention, feed-forward; with
    ``global_cond_dim`` the adaLN form (scale, shift and gate from the global conditioning)."""

    def __init__(self, dim: int, dim_heads: int = 64, cross_attend: bool = False, dim_context=None,
                 global_cond_dim=None, causal: bool = False, zero_init_branch_outputs: bool = True,
                 conformer: bool = False, layer_ix: int = -1, remove_norms: bool = False, add_rope: bool = False,
                 layer_scale: bool = False, attn_kwargs=None, ff_kwargs=None, norm_kwargs=None):
        super().__init__()
        refuse({"conformer": conformer, "remove_norms": remove_norms, "add_rope": add_rope, "causal": causal},
               _BLOCK_UNSUPPORTED, "TransformerBlock")
        attn_kwargs, ff_kwargs, norm_kwargs = dict(attn_kwargs or {}), dict(ff_kwargs or {}), dict(norm_kwargs or {})
        self.dim, self.dim_heads = dim, min(dim_heads, dim)
        scale = (lambda: LayerScale(dim)) if layer_scale else nn.Identity
        self.pre_norm = LayerNorm(dim, **norm_kwargs)
        self.self_attn = Attention(dim, dim_heads=self.dim_heads, **attn_kwargs)
        self.self_attn_scale = scale()
        self.cross_attend = cross_attend
        if cross_attend:
            self.cross_attend_norm = LayerNorm(dim, **norm_kwargs)
            self.cross_attn = Attention(dim, dim_heads=self.dim_heads, dim_context=dim_context, **attn_kwargs)
            self.cross_attn_scale = scale()
        self.ff_norm = LayerNorm(dim, **norm_kwargs)
        self.ff = FeedForward(dim, **ff_kwargs)
        self.ff_scale = scale()
        self.global_cond_dim = global_cond_dim
        if global_cond_dim is not None:
            self.to_scale_shift_gate = nn.Parameter(Tensor(np.zeros(6 * dim, dtype=np.float32)))

    def forward(self, x: Tensor, context=None, global_cond=None, rotary=None) -> Tensor:
        if self.global_cond_dim is not None and global_cond is not None:
            mods = split_last((self.to_scale_shift_gate + global_cond).unsqueeze(1), 6)
            scale_self, shift_self, gate_self, scale_ff, shift_ff, gate_ff = mods
            h = self.self_attn(self.pre_norm(x) * (1 + scale_self) + shift_self, rotary=rotary)
            x = x + self.self_attn_scale(h * (1 - gate_self).sigmoid())
            if context is not None and self.cross_attend:
                x = x + self.cross_attn_scale(self.cross_attn(self.cross_attend_norm(x), context=context))
            h = self.ff(self.ff_norm(x) * (1 + scale_ff) + shift_ff)
            return x + self.ff_scale(h * (1 - gate_ff).sigmoid())
        x = x + self.self_attn_scale(self.self_attn(self.pre_norm(x), rotary=rotary))
        if context is not None and self.cross_attend:
            x = x + self.cross_attn_scale(self.cross_attn(self.cross_attend_norm(x), context=context))
        return x + self.ff_scale(self.ff(self.ff_norm(x)))


class ContinuousTransformer(nn.Module):
    """A stack of ``TransformerBlock`` between input and output projections, with rotary
    positions over the prepended and input tokens together."""

    def __init__(self, dim: int, depth: int, *, dim_in=None, dim_out=None, dim_heads: int = 64,
                 cross_attend: bool = False, cond_token_dim=None, final_cross_attn_ix: int = -1,
                 global_cond_dim=None, causal: bool = False, rotary_pos_emb: bool = True,
                 zero_init_branch_outputs: bool = True, conformer: bool = False, use_sinusoidal_emb: bool = False,
                 use_abs_pos_emb: bool = False, abs_pos_emb_max_length: int = 10000, num_memory_tokens: int = 0,
                 sliding_window=None, **kwargs):
        super().__init__()
        refuse({"causal": causal, "conformer": conformer, "use_sinusoidal_emb": use_sinusoidal_emb,
                "use_abs_pos_emb": use_abs_pos_emb, "sliding_window": sliding_window},
               _TRANSFORMER_UNSUPPORTED, "ContinuousTransformer")
        self.dim, self.depth = dim, depth
        self.project_in = nn.Linear(dim_in, dim, bias=False) if dim_in is not None else nn.Identity()
        self.project_out = nn.Linear(dim, dim_out, bias=False) if dim_out is not None else nn.Identity()
        self.rotary_pos_emb = RotaryEmbedding(max(dim_heads // 2, 32)) if rotary_pos_emb else None
        self.num_memory_tokens = num_memory_tokens
        if num_memory_tokens > 0:
            self.memory_tokens = nn.Parameter(Tensor(np.zeros((num_memory_tokens, dim), dtype=np.float32)))
        if global_cond_dim is not None:
            self.global_cond_embedder = nn.Sequential(nn.Linear(global_cond_dim, dim), nn.SiLU(),
                                                      nn.Linear(dim, dim * 6))
        else:
            self.global_cond_embedder = None
        self.layers = nn.ModuleList([
            TransformerBlock(dim, dim_heads=dim_heads,
                             cross_attend=cross_attend and (final_cross_attn_ix == -1 or i <= final_cross_attn_ix),
                             dim_context=cond_token_dim, global_cond_dim=global_cond_dim,
                             zero_init_branch_outputs=zero_init_branch_outputs, layer_ix=i, **kwargs)
            for i in range(depth)])

    def _rotary(self, seq_len: int, like: Tensor):
        if self.rotary_pos_emb is None:
            return None
        angles = self.rotary_pos_emb.angles(seq_len).astype(like.dtype.np)
        return (Tensor(np.cos(angles), device=like.device), Tensor(np.sin(angles), device=like.device))

    def forward(self, x: Tensor, prepend_embeds=None, global_cond=None, context=None) -> Tensor:
        x = self.project_in(x)
        if prepend_embeds is not None:
            if prepend_embeds.shape[-1] != x.shape[-1]:
                raise ValueError(f"ContinuousTransformer: prepended embeddings have width {prepend_embeds.shape[-1]}, "
                                 f"the sequence has {x.shape[-1]}")
            x = cat([prepend_embeds, x], dim=-2)
        if self.num_memory_tokens > 0:
            b = x.shape[0]
            x = cat([self.memory_tokens.unsqueeze(0).expand(b, *self.memory_tokens.shape), x], dim=1)
        rotary = self._rotary(x.shape[1], x)
        if global_cond is not None and self.global_cond_embedder is not None:
            global_cond = self.global_cond_embedder(global_cond)
        for layer in self.layers:
            x = layer(x, context=context, global_cond=global_cond, rotary=rotary)
        x = x[:, self.num_memory_tokens:, :]
        return self.project_out(x)


__all__ = ["ContinuousTransformer", "TransformerBlock", "Attention", "FeedForward", "RotaryEmbedding", "LayerNorm"]
