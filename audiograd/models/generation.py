"""The text-to-audio loop of ``StableAudio.generate``: conditioning, seeded noise, the sampler
over the guided DiT, optional init audio (variations), and decoding to audio."""
from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np

from ..tensor.tensor import Tensor
from .sampling import NoiseSource, sample_k, sample_rf

V_SAMPLERS = ("dpmpp-3m-sde", "dpmpp-2m-sde", "dpmpp-2m", "euler")
RF_SAMPLERS = ("pingpong", "euler")


def _check_args(model, sampler: str, steps: int, batch: int, seconds) -> None:
    known = V_SAMPLERS if model.config.diffusion_objective == "v" else RF_SAMPLERS
    if sampler not in known:
        raise ValueError(f"sampler {sampler!r} is not one for this model ({model.config.diffusion_objective} "
                         f"objective): choose one of {', '.join(known)}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    if seconds is not None and not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"seconds must be a positive number, got {seconds!r}")


def latent_length(model, sample_size: int) -> int:
    """Latent frames for ``sample_size`` audio samples (rounded up to whole latents and patches)."""
    ratio = model.vae.downsampling_ratio if model.vae is not None else 1
    patch = model.dit.patch_size
    frames = -(-sample_size // ratio)
    return -(-frames // patch) * patch


def generate(model, prompt: str, seconds=None, steps=None, cfg_scale=None, seed: int = 0, sampler=None,
             negative_prompt=None, batch: int = 1, seconds_start: float = 0.0, sample_size=None, init_audio=None,
             init_noise_level: float = 1.0, callback: Optional[Callable[[dict], None]] = None) -> np.ndarray:
    """See ``StableAudio.generate``."""
    cfg = model.config
    defaults = cfg.defaults
    steps = defaults["steps"] if steps is None else steps
    cfg_scale = defaults["cfg_scale"] if cfg_scale is None else float(cfg_scale)
    sampler = defaults["sampler"] if sampler is None else sampler
    _check_args(model, sampler, steps, batch, seconds)
    sample_size = cfg.sample_size if sample_size is None else int(sample_size)
    window = sample_size / cfg.sample_rate
    seconds_total = window if seconds is None else float(seconds)
    if seconds_total > window + 1e-9:
        raise ValueError(f"seconds ({seconds_total:g}) exceed the generated window ({window:.2f} s = "
                         f"{sample_size} samples); pass a larger sample_size")
    meta = [{"prompt": prompt, "seconds_start": seconds_start, "seconds_total": seconds_total}] * batch
    cond = model.condition(meta)
    negative = None
    if negative_prompt is not None:
        negative = model.condition([dict(m, prompt=negative_prompt) for m in meta])
    param = next(model.dit.parameters())
    noise_source = NoiseSource(seed)
    frames = latent_length(model, sample_size)
    noise = noise_source.normal((batch, cfg.io_channels, frames), dtype=param.dtype, device=param.device)
    init = None
    if init_audio is not None:
        init = _encode_init(model, init_audio, sample_size, batch, param)

    def model_fn(x: Tensor, t: Tensor, **_) -> Tensor:
        return model.denoise(x, t, cond, negative, cfg_scale)

    noise_sampler = noise_source.sampler((batch, cfg.io_channels, frames), dtype=param.dtype, device=param.device)
    if cfg.diffusion_objective == "v":
        latents = sample_k(model_fn, noise, init_data=init, steps=steps, sampler_type=sampler,
                           sigma_min=defaults["sigma_min"], sigma_max=init_noise_level if init is not None
                           else defaults["sigma_max"], rho=1.0, callback=callback, noise_sampler=noise_sampler)
    else:
        latents = sample_rf(model_fn, noise, init_data=init, steps=steps, sampler_type=sampler,
                            sigma_max=init_noise_level if init is not None else defaults["sigma_max"],
                            callback=callback, noise_sampler=noise_sampler)
    if model.vae is None:
        return latents.numpy()
    audio = model.decode(latents).numpy()
    keep = min(audio.shape[-1], int(round(seconds_total * cfg.sample_rate)))
    return audio[..., :keep]


def _encode_init(model, init_audio, sample_size: int, batch: int, param) -> Tensor:
    """Init audio ``(sample_rate, array (channels, samples))`` resampled, matched to the model's
    channels, cropped or zero-padded to ``sample_size``, encoded to latents, repeated per item."""
    from ..audio.io import match_channels, resample
    if model.vae is None:
        raise ValueError("init audio needs a model with an autoencoder")
    sr, audio = init_audio
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2 or not np.isfinite(audio).all():
        raise ValueError(f"init audio must be finite (channels, samples), got shape {audio.shape}")
    if int(sr) != model.config.sample_rate:
        audio = resample(audio, int(sr), model.config.sample_rate)
    audio = match_channels(audio, model.vae.io_channels)
    fitted = np.zeros((audio.shape[0], sample_size), dtype=np.float32)
    n = min(sample_size, audio.shape[1])
    fitted[:, :n] = audio[:, :n]
    latents = model.vae.encode(Tensor(fitted[None].astype(param.dtype.np), device=param.device)) / model.vae_scale
    frames = latent_length(model, sample_size)
    if latents.shape[-1] != frames:
        raise ValueError(f"init audio encodes to {latents.shape[-1]} latents, expected {frames}")
    return latents.expand(batch, *latents.shape[1:]).contiguous()
