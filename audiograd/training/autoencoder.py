"""One training step of stable-audio-tools' ``AutoencoderTrainingWrapper``: a VAE autoencoder
against a discriminator, generator and discriminator steps alternating.

The step, as the original takes it (``global_step`` counts steps from 0):
- the warm-up ends at ``warmup_steps``; with ``encoder_freeze_on_warmup`` the encoder then runs
  without gradients;
- reals are encoded (the VAE samples its latents and gives its KL term) and decoded, and the
  longer of decoded and reals is trimmed to the shorter;
- odd steps train the discriminator (in ``warmup_mode`` "full" only once warmed up, so that
  mode trains only the generator before) on its hinge loss, even steps the generator on
  ``autoencoder_losses``; adversarial and feature-matching terms count once warmed up;
- the EMA of the autoencoder's weights is updated before the generator's optimizer step;
- gradients are clipped by total norm when ``clip_grad_norm > 0``; each optimizer's scheduler
  steps after it.
Unlike the original, a discriminator step does not differentiate through the autoencoder and a
generator step does not differentiate into the discriminator (neither gradient is used there).
"""
from __future__ import annotations

import math
from typing import Dict, Optional

import numpy as np

from ..audio.output import atomic_output
from ..models.oobleck import OobleckVAE
from ..optim.clip import clip_grad_norm_
from ..optim.factory import create_optimizer_from_config, create_scheduler_from_config
from ..tensor.autograd import no_grad
from ..tensor.creation import randn
from ..tensor.tensor import Tensor, realize_all
from .autoencoder_losses import DEFAULT_LOSS_CONFIG, build_discriminator, generator_terms, total_loss
from .ema import EMA


class NonFiniteLoss(FloatingPointError):
    """A step's loss was NaN or infinite (``losses`` holds every term of that step)."""

    def __init__(self, step: int, losses: Dict[str, float]):
        bad = sorted(k for k, v in losses.items() if not math.isfinite(v))
        super().__init__(f"step {step}: non-finite loss ({', '.join(bad) or 'total'}): "
                         + ", ".join(f"{k}={v:.4g}" for k, v in losses.items()))
        self.step, self.losses = step, losses


def _default_optimizers(lr: float) -> dict:
    adamw = {"type": "AdamW", "config": {"lr": lr, "betas": (0.8, 0.99)}}
    return {"autoencoder": {"optimizer": adamw}, "discriminator": {"optimizer": adamw}}


class AutoencoderTrainingWrapper:
    """The autoencoder, its discriminator, both optimizers (and schedulers), the EMA and the
    step counter; ``training_step(reals)`` runs one step. ``on_nonfinite`` is "skip" (the step's
    update is not applied and the step is counted as skipped), "stop" (raise ``NonFiniteLoss``)
    or "ignore" (apply it anyway, as the original does)."""

    def __init__(self, autoencoder: OobleckVAE, sample_rate: int = 48000, loss_config: Optional[dict] = None,
                 optimizer_configs: Optional[dict] = None, lr: float = 1e-4, warmup_steps: int = 0,
                 warmup_mode: str = "adv", encoder_freeze_on_warmup: bool = False, use_ema: bool = True,
                 clip_grad_norm: float = 0.0, force_input_mono: bool = False, latent_mask_ratio: float = 0.0,
                 on_nonfinite: str = "skip", seed: int = 0):
        if warmup_mode not in ("adv", "full"):
            raise ValueError(f"warmup_mode must be 'adv' or 'full', got {warmup_mode!r}")
        if on_nonfinite not in ("skip", "stop", "ignore"):
            raise ValueError(f"on_nonfinite must be 'skip', 'stop' or 'ignore', got {on_nonfinite!r}")
        self.autoencoder, self.sample_rate = autoencoder, int(sample_rate)
        self.loss_config = DEFAULT_LOSS_CONFIG if loss_config is None else loss_config
        self.warmup_steps, self.warmup_mode = int(warmup_steps), warmup_mode
        self.encoder_freeze_on_warmup, self.clip_grad_norm = encoder_freeze_on_warmup, float(clip_grad_norm)
        self.force_input_mono, self.latent_mask_ratio = force_input_mono, float(latent_mask_ratio)
        self.on_nonfinite = on_nonfinite
        self.out_channels = autoencoder.decoder.out_channels
        self.discriminator = build_discriminator(self.loss_config, self.out_channels)
        if self.discriminator is not None:
            self.discriminator.to(dtype=self._dtype(), device=self._device())
        self.use_disc = self.discriminator is not None
        self.gen_terms = generator_terms(self.loss_config, self.out_channels, self.sample_rate, self.use_disc)
        configs = _default_optimizers(lr) if optimizer_configs is None else optimizer_configs
        self.opt_gen = create_optimizer_from_config(configs["autoencoder"]["optimizer"], autoencoder.parameters())
        self.opt_disc = self.sched_gen = self.sched_disc = None
        if self.use_disc:
            self.opt_disc = create_optimizer_from_config(configs["discriminator"]["optimizer"],
                                                         self.discriminator.parameters())
            if "scheduler" in configs["autoencoder"] and "scheduler" in configs["discriminator"]:
                self.sched_gen = create_scheduler_from_config(configs["autoencoder"]["scheduler"], self.opt_gen)
                self.sched_disc = create_scheduler_from_config(configs["discriminator"]["scheduler"], self.opt_disc)
        elif "scheduler" in configs["autoencoder"]:
            self.sched_gen = create_scheduler_from_config(configs["autoencoder"]["scheduler"], self.opt_gen)
        self.ema = EMA(autoencoder, beta=0.9999, power=3 / 4, update_every=1, update_after_step=1) if use_ema else None
        self.rng = np.random.default_rng(seed)
        self.global_step, self.skipped_steps = 0, 0

    @classmethod
    def from_config(cls, autoencoder: OobleckVAE, model_config: dict, **overrides) -> "AutoencoderTrainingWrapper":
        """Built from a model_config.json's ``training`` section as stable-audio-tools does (and its
        ``warmup_mode`` and ``clip_grad_norm``, which the original's factory leaves at their defaults)."""
        training = model_config.get("training", {})
        if not isinstance(training, dict):
            raise ValueError(f"model config: 'training' must be an object, got {type(training).__name__}")
        unsupported = [k for k in ("teacher_model",) if training.get(k) is not None]
        if unsupported:
            raise NotImplementedError(f"training options not supported: {unsupported}")
        kwargs = dict(sample_rate=model_config.get("sample_rate", 44100), lr=training.get("learning_rate") or 1e-4,
                      warmup_steps=training.get("warmup_steps", 0), warmup_mode=training.get("warmup_mode", "adv"),
                      encoder_freeze_on_warmup=training.get("encoder_freeze_on_warmup", False),
                      loss_config=training.get("loss_configs"), optimizer_configs=training.get("optimizer_configs"),
                      use_ema=training.get("use_ema", False), force_input_mono=training.get("force_input_mono", False),
                      latent_mask_ratio=training.get("latent_mask_ratio", 0.0),
                      clip_grad_norm=training.get("clip_grad_norm", 0.0))
        kwargs.update(overrides)
        return cls(autoencoder, **kwargs)

    @property
    def warmed_up(self) -> bool:
        return self.global_step >= self.warmup_steps

    def is_discriminator_step(self) -> bool:
        """Whether the current step trains the discriminator."""
        return bool(self.use_disc and self.global_step % 2 and (self.warmup_mode == "adv" or self.warmed_up))

    def _forward(self, reals: Tensor, noise: Optional[Tensor]) -> dict:
        ae = self.autoencoder
        encoder_input = reals
        if self.force_input_mono and reals.shape[1] > 1:
            encoder_input = reals.mean(1, keepdim=True)
        if self.warmed_up and self.encoder_freeze_on_warmup:
            with no_grad():
                pre = ae.encoder(encoder_input)
        else:
            pre = ae.encoder(encoder_input)
        if noise is None:
            noise = randn(reals.shape[0], pre.shape[1] // 2, pre.shape[2], dtype=pre.dtype, generator=self.rng,
                          device=pre.device)
        latents, kl = ae.bottleneck.encode(pre, sample=True, noise=noise, return_kl=True)
        if self.latent_mask_ratio > 0.0:
            keep = self.rng.random(tuple(latents.shape)) >= self.latent_mask_ratio
            latents = latents * Tensor(keep.astype(latents.dtype.np), dtype=latents.dtype, device=latents.device)
        decoded = ae.decoder(latents)
        n = min(decoded.shape[-1], reals.shape[-1])
        return {"reals": reals[..., :n], "decoded": decoded[..., :n], "latents": latents, "kl": kl}

    def training_step(self, reals, noise: Optional[Tensor] = None) -> Dict[str, float]:
        """One step on a batch ``reals`` (batch, channels, samples); ``noise`` replaces the VAE's
        standard-normal draw (for reproducing another implementation's step). Returns each loss."""
        reals = reals if isinstance(reals, Tensor) else Tensor(np.asarray(reals), dtype=self._dtype(),
                                                                device=self._device())
        if reals.ndim == 2:
            reals = reals.unsqueeze(1)
        if reals.ndim != 3 or reals.shape[1] != self.autoencoder.encoder.in_channels and not self.force_input_mono:
            raise ValueError(f"training_step: expected audio (batch, {self.autoencoder.encoder.in_channels}, samples), "
                             f"got {tuple(reals.shape)}")
        disc_step = self.is_discriminator_step()
        if disc_step:
            with no_grad():
                info = self._forward(reals, noise)
            loss_dis, _, _ = self.discriminator.loss(info["reals"], info["decoded"])
            losses = {"discriminator_loss": loss_dis}
            loss, params, opt, sched = loss_dis, list(self.discriminator.parameters()), self.opt_disc, self.sched_disc
        else:
            if self.use_disc:
                self.discriminator.requires_grad_(False)
            try:
                info = self._forward(reals, noise)
                if self.use_disc and self.warmed_up:
                    _, info["loss_adv"], info["feature_matching_distance"] = self.discriminator.loss(
                        info["reals"], info["decoded"])
                else:
                    info["loss_adv"] = info["feature_matching_distance"] = 0.0
                loss, losses = total_loss(self.gen_terms, info)
            finally:
                if self.use_disc:
                    self.discriminator.requires_grad_(True)
            params, opt, sched = list(self.autoencoder.parameters()), self.opt_gen, self.sched_gen
        realize_all([loss] + [v for v in losses.values() if isinstance(v, Tensor)])  # one schedule for all terms
        values = {k: float(v.item() if isinstance(v, Tensor) else v) for k, v in losses.items()}
        values["loss"] = float(loss.item())
        finite = all(math.isfinite(v) for v in values.values())
        if not finite and self.on_nonfinite == "stop":
            raise NonFiniteLoss(self.global_step, values)
        if finite or self.on_nonfinite == "ignore":
            if not disc_step and self.ema is not None:
                self.ema.update()
            opt.zero_grad()
            loss.backward()
            if self.clip_grad_norm > 0.0:
                clip_grad_norm_(params, self.clip_grad_norm)
            opt.step()
            if sched is not None:
                sched.step()
        else:
            opt.zero_grad()
            self.skipped_steps += 1
        self.global_step += 1
        return values

    def ema_state(self) -> Dict[str, Tensor]:
        """The weights ``export_model`` writes: the EMA shadows (the live weights without EMA)."""
        live = self.autoencoder.state_dict()
        if self.ema is None:
            return dict(live)
        return {k: self.ema.shadow.get(k, v) for k, v in live.items()}

    def export_model(self, path) -> None:
        """Write the (EMA) autoencoder alone as safetensors, keys ``encoder.``/``decoder.`` as
        stable-audio-tools' ``export_model`` writes them; written atomically."""
        from safetensors.numpy import save_file
        tensors = {k: np.ascontiguousarray(v.numpy()) for k, v in self.ema_state().items()}
        with atomic_output(path) as tmp:
            save_file(tensors, str(tmp))

    def _dtype(self):
        return next(self.autoencoder.parameters()).dtype

    def _device(self):
        return next(self.autoencoder.parameters()).device
