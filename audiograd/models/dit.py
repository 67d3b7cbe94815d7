"""stable-audio-tools' ``DiffusionTransformer`` (Stable Audio Open's denoiser): timestep Fourier
features, conditioning projections, 1x1 pre/post convolutions around a ``ContinuousTransformer``,
and classifier-free guidance, with the same config keys, state-dict keys and ``forward`` names.
"""
from __future__ import annotations

import math

import numpy as np

from .. import nn
from ..nn import functional as F
from ..tensor import cat, where
from ..tensor.tensor import Tensor
from .transformer import ContinuousTransformer


class FourierFeatures(nn.Module):
    """``t -> [cos(2 pi t W^T), sin(2 pi t W^T)]`` with a learned ``weight`` (out/2, in)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(Tensor(np.random.default_rng(0).standard_normal(
            (out_features // 2, in_features)).astype(np.float32)))

    def forward(self, x: Tensor) -> Tensor:
        f = (x * (2 * math.pi)) @ self.weight.transpose(0, 1)
        return cat([f.cos(), f.sin()], dim=-1)


def _mlp(d_in: int, d_out: int, bias: bool) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_out, bias=bias), nn.SiLU(), nn.Linear(d_out, d_out, bias=bias))


def _conv1x1(x: Tensor, weight: Tensor) -> Tensor:
    """A bias-less 1x1 Conv1d over (b, c, t) as one matrix product."""
    return weight[:, :, 0] @ x


class DiffusionTransformer(nn.Module):
    """The DiT, constructed from the ``diffusion.config`` keys of a model_config.json."""

    def __init__(self, io_channels: int = 32, patch_size: int = 1, embed_dim: int = 768, cond_token_dim: int = 0,
                 project_cond_tokens: bool = True, global_cond_dim: int = 0, project_global_cond: bool = True,
                 input_concat_dim: int = 0, prepend_cond_dim: int = 0, depth: int = 12, num_heads: int = 8,
                 transformer_type: str = "continuous_transformer", global_cond_type: str = "prepend",
                 timestep_cond_type: str = "global", timestep_embed_dim=None, diffusion_objective: str = "v",
                 **kwargs):
        super().__init__()
        if transformer_type != "continuous_transformer":
            raise NotImplementedError(f"DiffusionTransformer: transformer_type {transformer_type!r} is not supported")
        if global_cond_type not in ("prepend", "adaLN"):
            raise ValueError(f"DiffusionTransformer: global_cond_type must be 'prepend' or 'adaLN', got {global_cond_type!r}")
        if timestep_cond_type != "global":
            raise NotImplementedError(f"DiffusionTransformer: timestep_cond_type {timestep_cond_type!r} is not supported")
        if diffusion_objective not in ("v", "rectified_flow", "rf_denoiser"):
            raise ValueError(f"DiffusionTransformer: unknown diffusion_objective {diffusion_objective!r}")
        self.io_channels, self.patch_size, self.embed_dim = io_channels, patch_size, embed_dim
        self.cond_token_dim, self.global_cond_type = cond_token_dim, global_cond_type
        self.diffusion_objective = diffusion_objective
        self.timestep_features = FourierFeatures(1, 256)
        self.to_timestep_embed = _mlp(256, embed_dim, bias=True)
        cond_embed_dim = 0
        if cond_token_dim > 0:
            cond_embed_dim = embed_dim if project_cond_tokens else cond_token_dim
            self.to_cond_embed = nn.Sequential(nn.Linear(cond_token_dim, cond_embed_dim, bias=False), nn.SiLU(),
                                               nn.Linear(cond_embed_dim, cond_embed_dim, bias=False))
        if global_cond_dim > 0:
            global_embed_dim = embed_dim if project_global_cond else global_cond_dim
            self.to_global_embed = nn.Sequential(nn.Linear(global_cond_dim, global_embed_dim, bias=False), nn.SiLU(),
                                                 nn.Linear(global_embed_dim, global_embed_dim, bias=False))
        if prepend_cond_dim > 0:
            self.to_prepend_embed = _mlp(prepend_cond_dim, embed_dim, bias=False)
        self.input_concat_dim = input_concat_dim
        dim_in = io_channels + input_concat_dim
        self.transformer = ContinuousTransformer(
            dim=embed_dim, depth=depth, dim_heads=embed_dim // num_heads, dim_in=dim_in * patch_size,
            dim_out=io_channels * patch_size, cross_attend=cond_token_dim > 0, cond_token_dim=cond_embed_dim,
            global_cond_dim=embed_dim if global_cond_type == "adaLN" else None, **kwargs)
        self.preprocess_conv = nn.Conv1d(dim_in, dim_in, 1, bias=False)
        self.postprocess_conv = nn.Conv1d(io_channels, io_channels, 1, bias=False)

    # ---- one pass of the network --------------------------------------------------------------
    def _forward(self, x: Tensor, t: Tensor, cross_attn_cond=None, input_concat_cond=None, global_embed=None,
                 prepend_cond=None) -> Tensor:
        if cross_attn_cond is not None:
            cross_attn_cond = self.to_cond_embed(cross_attn_cond)
        if global_embed is not None:
            global_embed = self.to_global_embed(global_embed)
        prepend = self.to_prepend_embed(prepend_cond) if prepend_cond is not None else None
        if input_concat_cond is not None:
            if input_concat_cond.shape[2] != x.shape[2]:
                input_concat_cond = F.interpolate(input_concat_cond, size=(x.shape[2],), mode="nearest")
            x = cat([x, input_concat_cond], dim=1)
        timestep_embed = self.to_timestep_embed(self.timestep_features(t.unsqueeze(1)))
        global_embed = timestep_embed if global_embed is None else global_embed + timestep_embed
        # stable-audio-tools computes a mask for the prepended tokens but never passes it to the
        # transformer: every prepended token is attended to, as here
        extra = {}
        if self.global_cond_type == "prepend":
            g = global_embed.unsqueeze(1)
            prepend = g if prepend is None else cat([prepend, g], dim=1)
        else:
            extra["global_cond"] = global_embed
        prepend_length = 0 if prepend is None else prepend.shape[1]
        x = _conv1x1(x, self.preprocess_conv.weight) + x
        x = x.permute(0, 2, 1)
        if self.patch_size > 1:
            b, n, c = x.shape
            p = self.patch_size
            x = x.reshape(b, n // p, p, c).permute(0, 1, 3, 2).reshape(b, n // p, c * p)
        out = self.transformer(x, prepend_embeds=prepend, context=cross_attn_cond, **extra)
        out = out.permute(0, 2, 1)[:, :, prepend_length:]
        if self.patch_size > 1:
            b, cp, n = out.shape
            p = self.patch_size
            out = out.reshape(b, cp // p, p, n).permute(0, 1, 3, 2).reshape(b, cp // p, n * p)
        return _conv1x1(out, self.postprocess_conv.weight) + out

    # ---- the model call with classifier-free guidance -------------------------------------------
    def forward(self, x, t, cross_attn_cond=None, cross_attn_cond_mask=None, negative_cross_attn_cond=None,
                negative_cross_attn_mask=None, input_concat_cond=None, global_embed=None, negative_global_embed=None,
                prepend_cond=None, prepend_cond_mask=None, cfg_scale: float = 1.0, cfg_dropout_prob: float = 0.0,
                cfg_interval=(0, 1), causal: bool = False, scale_phi: float = 0.0, mask=None,
                return_info: bool = False, exit_layer_ix=None, **kwargs) -> Tensor:
        """The denoiser's output for noisy latents ``x`` (b, io_channels, n) at times ``t`` (b,),
        with stable-audio-tools' argument names. With ``cfg_scale != 1`` the conditional and the
        unconditional (or negative) inputs run as one batch of 2b."""
        if causal:
            raise NotImplementedError("DiffusionTransformer: causal mode is not supported (nor by stable-audio-tools)")
        if cfg_dropout_prob > 0.0:
            raise NotImplementedError("DiffusionTransformer: cfg_dropout_prob is a training option, not supported")
        if return_info or exit_layer_ix is not None:
            raise NotImplementedError("DiffusionTransformer: return_info and exit_layer_ix are not supported")
        if kwargs:
            raise TypeError(f"DiffusionTransformer.forward: unexpected arguments {sorted(kwargs)}")
        param = next(self.parameters())
        like = lambda v: None if v is None else _as_tensor(v, param)  # noqa: E731
        x, t = like(x), like(t)
        cross_attn_cond, negative_cross_attn_cond = like(cross_attn_cond), like(negative_cross_attn_cond)
        input_concat_cond, global_embed, prepend_cond = like(input_concat_cond), like(global_embed), like(prepend_cond)
        self._check(x, t)
        # stable-audio-tools drops the conditioning tokens' mask (cross_attn_cond_mask) before
        # the transformer: padded prompt tokens are attended to; the released weights were trained
        # so. The negative prompt's mask is used below to zero its padded tokens.
        guided = (cfg_scale != 1.0 and (cross_attn_cond is not None or prepend_cond is not None)
                  and self._in_cfg_interval(t, cfg_interval))
        if not guided:
            return self._forward(x, t, cross_attn_cond, input_concat_cond, global_embed, prepend_cond)
        both = lambda v: None if v is None else cat([v, v], dim=0)  # noqa: E731
        batch_cond = None
        if cross_attn_cond is not None:
            null = cross_attn_cond * 0
            if negative_cross_attn_cond is not None:
                negative = negative_cross_attn_cond
                if negative_cross_attn_mask is not None:
                    keep = _as_tensor(negative_cross_attn_mask, param, boolean=True).unsqueeze(2)
                    negative = where(keep, negative, null)
                batch_cond = cat([cross_attn_cond, negative], dim=0)
            else:
                batch_cond = cat([cross_attn_cond, null], dim=0)
        batch_prepend = None if prepend_cond is None else cat([prepend_cond, prepend_cond * 0], dim=0)
        # stable-audio-tools' DiT wrapper never passes the negative global conditioning on, so the
        # unconditional half keeps the positive global embedding
        out = self._forward(both(x), both(t), batch_cond, both(input_concat_cond), both(global_embed), batch_prepend)
        b = x.shape[0]
        cond, uncond = out[:b], out[b:]
        cfg = uncond + (cond - uncond) * cfg_scale
        if scale_phi != 0.0:
            ratio = cond.std(dim=1, keepdim=True) / cfg.std(dim=1, keepdim=True)
            return (cfg * ratio) * scale_phi + cfg * (1 - scale_phi)
        return cfg

    def _in_cfg_interval(self, t: Tensor, interval) -> bool:
        """Whether the first item's noise level lies in ``interval``; every level (sin(t pi/2)
        for "v", t for rectified flow, t in [0, 1]) lies in the default (0, 1), so only other
        intervals read ``t`` back to the host."""
        lo, hi = interval
        if lo <= 0 and hi >= 1:
            return True
        t0 = float(t.numpy().astype(np.float64)[0])
        sigma = math.sin(t0 * math.pi / 2) if self.diffusion_objective == "v" else t0
        return lo <= sigma <= hi

    def _check(self, x: Tensor, t: Tensor) -> None:
        channels = self.io_channels
        if x.ndim != 3 or x.shape[1] != channels:
            raise ValueError(f"DiffusionTransformer: x must be (batch, {channels}, length), got {tuple(x.shape)}")
        if x.shape[2] % self.patch_size:
            raise ValueError(f"DiffusionTransformer: length {x.shape[2]} is not a multiple of patch_size {self.patch_size}")
        if t.ndim != 1 or t.shape[0] != x.shape[0]:
            raise ValueError(f"DiffusionTransformer: t must be (batch,) = ({x.shape[0]},), got {tuple(t.shape)}")


def _as_tensor(value, like: Tensor, boolean: bool = False) -> Tensor:
    """``value`` as a tensor on ``like``'s device in its dtype (or boolean)."""
    if isinstance(value, Tensor):
        if boolean:
            return value if value.dtype.kind == "b" else value != 0
        return value if value.dtype == like.dtype else value.to(dtype=like.dtype)
    arr = np.asarray(value)
    arr = arr.astype(bool) if boolean else arr.astype(like.dtype.np)
    return Tensor(arr, device=like.device)


__all__ = ["DiffusionTransformer", "FourierFeatures"]
