"""The Oobleck autoencoder of Stable Audio Open, with stable-audio-tools' structure and keys.

Module nesting, parameter names and constructor arguments mirror stable-audio-tools'
``OobleckEncoder``/``OobleckDecoder`` (weight-normed convolutions, SnakeBeta activations
with log-scale parameters, residual units with dilations 1, 3, 9), so their state dicts load
without renaming. ``OobleckVAE`` adds the VAE bottleneck and checkpoint loading.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from .. import nn
from ..tensor.creation import randn
from ..tensor.tensor import Tensor
from .checkpoint import load_state

# the `pretransform.config` of Stable Audio Open 1.0's model_config.json
SAO_CONFIG = {
    "encoder": {"type": "oobleck", "config": {"in_channels": 2, "channels": 128, "c_mults": [1, 2, 4, 8, 16],
                                               "strides": [2, 4, 4, 8, 8], "latent_dim": 128, "use_snake": True}},
    "decoder": {"type": "oobleck", "config": {"out_channels": 2, "channels": 128, "c_mults": [1, 2, 4, 8, 16],
                                               "strides": [2, 4, 4, 8, 8], "latent_dim": 64, "use_snake": True,
                                               "final_tanh": False}},
    "bottleneck": {"type": "vae"},
    "latent_dim": 64,
    "downsampling_ratio": 2048,
    "io_channels": 2,
    "sample_rate": 44100,
}


def wn_conv1d(*args, **kwargs) -> nn.Conv1d:
    return nn.utils.weight_norm(nn.Conv1d(*args, **kwargs))


def wn_conv_transpose1d(*args, **kwargs) -> nn.ConvTranspose1d:
    return nn.utils.weight_norm(nn.ConvTranspose1d(*args, **kwargs))


def activation(use_snake: bool, channels: int, antialias: bool = False) -> nn.Module:
    if antialias:
        raise NotImplementedError("antialias_activation=True (alias-free activations) is not supported")
    return nn.SnakeBeta(channels) if use_snake else nn.ELU()


class ResidualUnit(nn.Module):
    """x + conv1x1(act(conv7_dilated(act(x))))."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int, use_snake: bool = False):
        super().__init__()
        self.layers = nn.Sequential(
            activation(use_snake, out_channels),
            wn_conv1d(in_channels, out_channels, kernel_size=7, dilation=dilation, padding=dilation * 3),
            activation(use_snake, out_channels),
            wn_conv1d(out_channels, out_channels, kernel_size=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x) + x


class EncoderBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, use_snake: bool = False):
        super().__init__()
        self.layers = nn.Sequential(
            ResidualUnit(in_channels, in_channels, 1, use_snake),
            ResidualUnit(in_channels, in_channels, 3, use_snake),
            ResidualUnit(in_channels, in_channels, 9, use_snake),
            activation(use_snake, in_channels),
            wn_conv1d(in_channels, out_channels, kernel_size=2 * stride, stride=stride, padding=math.ceil(stride / 2)),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class DecoderBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, use_snake: bool = False):
        super().__init__()
        self.layers = nn.Sequential(
            activation(use_snake, in_channels),
            wn_conv_transpose1d(in_channels, out_channels, kernel_size=2 * stride, stride=stride,
                                padding=math.ceil(stride / 2)),
            ResidualUnit(out_channels, out_channels, 1, use_snake),
            ResidualUnit(out_channels, out_channels, 3, use_snake),
            ResidualUnit(out_channels, out_channels, 9, use_snake),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class OobleckEncoder(nn.Module):
    """Audio (B, in_channels, L) -> (B, latent_dim, L / prod(strides))."""

    def __init__(self, in_channels: int = 2, channels: int = 128, latent_dim: int = 32,
                 c_mults: Sequence[int] = (1, 2, 4, 8), strides: Sequence[int] = (2, 4, 8, 8),
                 use_snake: bool = False, antialias_activation: bool = False):
        super().__init__()
        if len(c_mults) != len(strides):
            raise ValueError(f"OobleckEncoder: c_mults {list(c_mults)} and strides {list(strides)} differ in length")
        mults = [1] + list(c_mults)
        layers = [wn_conv1d(in_channels, mults[0] * channels, kernel_size=7, padding=3)]
        for i in range(len(mults) - 1):
            layers.append(EncoderBlock(mults[i] * channels, mults[i + 1] * channels, strides[i], use_snake))
        layers += [activation(use_snake, mults[-1] * channels, antialias_activation),
                   wn_conv1d(mults[-1] * channels, latent_dim, kernel_size=3, padding=1)]
        self.layers = nn.Sequential(*layers)
        self.in_channels = in_channels

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class OobleckDecoder(nn.Module):
    """Latents (B, latent_dim, T) -> audio (B, out_channels, about T * prod(strides) samples:
    exactly that for even strides, as in SAO)."""

    def __init__(self, out_channels: int = 2, channels: int = 128, latent_dim: int = 32,
                 c_mults: Sequence[int] = (1, 2, 4, 8), strides: Sequence[int] = (2, 4, 8, 8),
                 use_snake: bool = False, antialias_activation: bool = False, use_nearest_upsample: bool = False,
                 final_tanh: bool = True):
        super().__init__()
        if use_nearest_upsample:
            raise NotImplementedError("use_nearest_upsample=True is not supported (SAO uses transposed convs)")
        if len(c_mults) != len(strides):
            raise ValueError(f"OobleckDecoder: c_mults {list(c_mults)} and strides {list(strides)} differ in length")
        mults = [1] + list(c_mults)
        layers = [wn_conv1d(latent_dim, mults[-1] * channels, kernel_size=7, padding=3)]
        for i in range(len(mults) - 1, 0, -1):
            layers.append(DecoderBlock(mults[i] * channels, mults[i - 1] * channels, strides[i - 1], use_snake))
        layers += [activation(use_snake, mults[0] * channels, antialias_activation),
                   wn_conv1d(mults[0] * channels, out_channels, kernel_size=7, padding=3, bias=False),
                   nn.Tanh() if final_tanh else nn.Identity()]
        self.layers = nn.Sequential(*layers)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class VAEBottleneck(nn.Module):
    """Splits encoder output into mean and scale; std = softplus(scale) + 1e-4."""

    def encode(self, x: Tensor, sample: bool = False, seed: Optional[int] = None, return_kl: bool = False,
               noise: Optional[Tensor] = None):
        """Latents from the encoder's output: the mean, or with ``sample`` the mean plus ``std``
        times ``noise`` (standard normal drawn with ``seed`` when not given); with ``return_kl``
        also the KL divergence from a standard normal (summed over channels, mean elsewhere)."""
        c = x.shape[1] // 2
        mean, scale = x[:, :c], x[:, c:]
        std = scale.softplus() + 1e-4
        if sample:
            if noise is None:
                noise = randn(*mean.shape, dtype=mean.dtype, generator=np.random.default_rng(seed), device=mean.device)
            elif tuple(noise.shape) != tuple(mean.shape):
                raise ValueError(f"VAE noise has shape {tuple(noise.shape)}, the latents {tuple(mean.shape)}")
            z = mean + std * noise
        else:
            z = mean
        if not return_kl:
            return z
        var = std * std
        kl = (mean * mean + var - var.log() - 1).sum(1).mean()
        return z, kl

    def decode(self, z: Tensor) -> Tensor:
        return z


def pretransform_config(config=None) -> dict:
    """SAO's ``pretransform.config`` from a dict or JSON path holding that part, the ``model``
    part of model_config.json, the whole file, or an autoencoder's own config (vae_config.json,
    the model under ``model``) (default: SAO 1.0)."""
    if config is None:
        return SAO_CONFIG
    if isinstance(config, (str, Path)):
        path = config
        try:
            with open(path, "rb") as f:
                config = json.loads(f.read().decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
            raise ValueError(f"{path}: not a JSON config ({e})") from None
        if not isinstance(config, dict):
            raise ValueError(f"{path}: a model config is a JSON object, this file holds a {type(config).__name__}")
    _section(config, "the config")
    if isinstance(config.get("model"), dict) and "pretransform" in config["model"]:
        outer = config
        config = dict(_section(_section(config["model"]["pretransform"], "model.pretransform").get("config"),
                               "model.pretransform.config"))
        config.setdefault("sample_rate", outer.get("sample_rate", 44100))
    elif isinstance(config.get("model"), dict) and "encoder" in config["model"]:
        # an autoencoder's own config (stable-audio-tools' vae_config.json: model_type "autoencoder")
        config = dict(config["model"], sample_rate=config["model"].get("sample_rate", config.get("sample_rate", 44100)))
    elif "pretransform" in config:
        config = dict(_section(_section(config["pretransform"], "pretransform").get("config"), "pretransform.config"))
    if "encoder" not in config and "decoder" not in config:
        raise ValueError("config has no encoder/decoder: expected SAO's pretransform config or model_config.json")
    _check_sections(config)
    return config


def _section(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"config: {where} must be a JSON object, got {type(value).__name__}")
    return value


def _check_sections(config: dict) -> None:
    """Refuse configs whose parts have the wrong JSON types, before any of them is used."""
    for part in ("encoder", "decoder"):
        if part in config:
            _section(_section(config[part], part).get("config", {}), f"{part}.config")
    if config.get("bottleneck") is not None:
        _section(config["bottleneck"], "bottleneck")
    for key in ("sample_rate", "io_channels", "latent_dim", "downsampling_ratio"):
        value = config.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise ValueError(f"config: {key} must be a positive integer, got {value!r}")
    strides = config.get("encoder", {}).get("config", {}).get("strides")
    if strides is not None and not (isinstance(strides, (list, tuple)) and strides
                                    and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in strides)):
        raise ValueError(f"config: encoder.config.strides must be a list of positive integers, got {strides!r}")


def vae_geometry(config=None) -> Tuple[int, int, int, int]:
    """``(sample_rate, io_channels, latent_dim, downsampling_ratio)`` of the autoencoder that
    ``config`` (as :func:`pretransform_config` takes it) describes, without building it."""
    cfg = pretransform_config(config)
    latent_dim = cfg.get("latent_dim", cfg["decoder"]["config"].get("latent_dim", 32))
    strides = cfg["encoder"]["config"].get("strides", (2, 4, 8, 8))
    return (int(cfg.get("sample_rate", 44100)), int(cfg.get("io_channels", 2)), int(latent_dim),
            int(cfg.get("downsampling_ratio", math.prod(strides))))


class OobleckVAE(nn.Module):
    """Encoder + VAE bottleneck + decoder, configured like stable-audio-tools' autoencoder."""

    def __init__(self, config: Union[dict, str, Path, None] = None):
        super().__init__()
        cfg = pretransform_config(config)
        for part in ("encoder", "decoder"):
            if cfg.get(part, {}).get("type", "oobleck") != "oobleck":
                raise NotImplementedError(f"{part} type {cfg[part].get('type')!r} is not supported (only 'oobleck')")
        bottleneck = (cfg.get("bottleneck") or {}).get("type", "vae")
        if bottleneck != "vae":
            raise NotImplementedError(f"bottleneck type {bottleneck!r} is not supported (only 'vae')")
        try:
            self.encoder = OobleckEncoder(**cfg["encoder"]["config"])
            self.decoder = OobleckDecoder(**cfg["decoder"]["config"])
        except TypeError as e:
            raise ValueError(f"unsupported Oobleck option in config: {e}") from None
        self.bottleneck = VAEBottleneck()
        self.config = cfg
        self.sample_rate, self.io_channels, self.latent_dim, self.downsampling_ratio = vae_geometry(cfg)

    def _as_tensor(self, x, dtype) -> Tensor:
        """``x`` as a tensor; arrays go where the model's parameters are."""
        t = x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=dtype.np), device=next(self.parameters()).device)
        if t.ndim != 3:
            raise ValueError(f"expected (batch, channels, time), got shape {tuple(t.shape)}")
        return t

    def _param_dtype(self):
        return next(self.parameters()).dtype

    def encode(self, audio, sample: bool = False, seed: Optional[int] = None) -> Tensor:
        """Latents of ``audio`` (batch, io_channels, samples): the posterior mean unless ``sample``."""
        x = self._as_tensor(audio, self._param_dtype())
        if x.shape[1] != self.encoder.in_channels:
            raise ValueError(f"encode: audio has {x.shape[1]} channels, the encoder expects {self.encoder.in_channels}")
        return self.bottleneck.encode(self.encoder(x), sample=sample, seed=seed)

    def decode(self, latents) -> Tensor:
        """Audio from latents (batch, latent_dim, frames)."""
        z = self._as_tensor(latents, self._param_dtype())
        return self.decoder(self.bottleneck.decode(z))

    @classmethod
    def from_pretrained(cls, checkpoint, config=None) -> "OobleckVAE":
        """Load SAO's model.safetensors / model.ckpt (keys under ``pretransform.model.``) or a
        VAE-only file (keys ``encoder.`` / ``decoder.``); ``config`` is model_config.json or
        its pretransform part (default: SAO 1.0)."""
        model = cls(config)
        state = load_state(checkpoint)
        prefix = "pretransform.model."
        if any(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        state = {k: v for k, v in state.items() if k.startswith(("encoder.", "decoder."))}
        if not state:
            raise ValueError(f"{checkpoint}: no encoder./decoder. (or pretransform.model.) keys found")
        model.load_state_dict(state)
        return model
