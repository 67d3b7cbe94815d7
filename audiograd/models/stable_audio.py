"""Stable Audio Open, text to audio: T5 and number conditioning, the diffusion transformer, the
samplers and the Oobleck decoder, as stable-audio-tools' ``generate_diffusion_cond`` runs them.

``StableAudio.from_pretrained(checkpoint, config, t5=DIR)`` loads SAO 1.0 or SAO Small
(``model.safetensors`` or ``model.ckpt`` with ``model_config.json``; T5 from a local Hugging Face
folder); ``StableAudio.random(config)`` builds one with random weights for trying the pipeline
without the gated weights. ``generate(prompt, ...)`` returns float32 audio (batch, channels,
samples).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np

from .. import nn
from ..jit import jit
from ..tensor.tensor import Tensor
from .checkpoint import load_state
from .conditioners import NumberConditioner, assemble
from .random_init import seeded_state
from .dit import DiffusionTransformer
from .oobleck import OobleckVAE
from .sao_config import GenerationConfig, read_generation_config
from .text_conditioner import TextConditioner


class StableAudio(nn.Module):
    """Conditioners + DiT + autoencoder of one text-to-audio model (state-dict keys as in SAO's
    checkpoints: ``model.model.*``, ``conditioner.conditioners.*``, ``pretransform.model.*``)."""

    def __init__(self, config: Union[dict, str, Path, GenerationConfig], text: Optional[dict] = None):
        super().__init__()
        cfg = config if isinstance(config, GenerationConfig) else read_generation_config(config)
        self.config = cfg
        try:
            dit = DiffusionTransformer(diffusion_objective=cfg.diffusion_objective, **cfg.dit)
        except TypeError as e:
            raise ValueError(f"{cfg.source}: unsupported DiT option ({e})") from None
        self.model = _Holder(model=dit)
        self.conditioner = _Holder(conditioners=_Holder())
        self.texts = {}  # T5 stays out of the state dict, as in stable-audio-tools (its own files)
        for spec in cfg.conditioners:
            if spec.type == "number":
                kw = {k: spec.config[k] for k in ("min_val", "max_val") if k in spec.config}
                setattr(self.conditioner.conditioners, spec.id, NumberConditioner(cfg.cond_dim, **kw))
            else:
                if text is None or spec.id not in text:
                    raise ValueError(f"{cfg.source}: conditioner {spec.id!r} needs a T5 encoder (pass t5=DIR)")
                self.texts[spec.id] = text[spec.id]
                if text[spec.id].proj_out is not None:
                    setattr(self.conditioner.conditioners, spec.id, _Holder(proj_out=text[spec.id].proj_out))
        self.pretransform = _Holder(model=OobleckVAE(cfg.pretransform["config"])) if cfg.pretransform else None
        self.vae_scale = float(cfg.pretransform.get("scale", 1.0)) if cfg.pretransform else 1.0
        self._denoise = jit(_denoise_call)
        self._decode = jit(_decode_call)

    def to(self, *args, **kwargs) -> "StableAudio":
        """Move or cast the model, T5 included (it is outside the module tree)."""
        super().to(*args, **kwargs)
        for cond in self.texts.values():
            cond.to(*args, **kwargs)
        return self

    @property
    def dit(self) -> DiffusionTransformer:
        return self.model.model

    @property
    def vae(self) -> Optional[OobleckVAE]:
        return None if self.pretransform is None else self.pretransform.model

    @property
    def numbers(self) -> dict:
        return {spec.id: getattr(self.conditioner.conditioners, spec.id)
                for spec in self.config.conditioners if spec.type == "number"}

    # ---- construction ----------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, checkpoint, config, t5=None, t5_half_weights: bool = True) -> "StableAudio":
        """Load a checkpoint (safetensors, or a PyTorch ``.ckpt``, read without pickle code) and
        its model_config.json; ``t5`` is a local folder holding t5-base (config.json, weights,
        spiece.model or tokenizer.json)."""
        cfg = read_generation_config(config)
        text = {}
        for spec in cfg.conditioners:
            if spec.type == "t5":
                if t5 is None:
                    raise ValueError(f"{cfg.source}: the prompt conditioner {spec.id!r} needs T5: pass t5=DIR "
                                     "(a local Hugging Face folder of t5-base)")
                text[spec.id] = TextConditioner.from_folder(
                    t5, output_dim=cfg.cond_dim, max_length=int(spec.config.get("max_length", 128)),
                    half_weights=t5_half_weights)
        model = cls(cfg, text)
        model.load_checkpoint(checkpoint)
        return model

    @classmethod
    def random(cls, config, seed: int = 0) -> "StableAudio":
        """A model of ``config``'s shapes with random weights and a small stand-in T5 (its own
        vocabulary, not t5's): for trying the pipeline without the gated weights."""
        cfg = read_generation_config(config)
        text = {spec.id: TextConditioner.random(output_dim=cfg.cond_dim, seed=seed + i,
                                                max_length=int(spec.config.get("max_length", 128)))
                for i, spec in enumerate(cfg.conditioners) if spec.type == "t5"}
        model = cls(cfg, text)
        shapes = {name: p.shape for name, p in model.named_parameters()}
        model.load_state_dict(seeded_state(shapes, seed), strict=False)
        return model

    def load_checkpoint(self, checkpoint) -> None:
        """Load SAO's weights: the DiT (``model.model.``), the conditioners
        (``conditioner.conditioners.``) and the autoencoder (``pretransform.model.``); the
        checkpoint's training-only entries (EMA copies, optimizer state) are ignored."""
        state = load_state(checkpoint)
        ours = self.state_dict()
        missing = sorted(k for k in ours if k not in state)
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise ValueError(f"{checkpoint}: missing weights {shown} (is it this config's checkpoint?)")
        self.load_state_dict({k: state[k] for k in ours})

    # ---- conditioning ----------------------------------------------------------------------------
    def condition(self, metadata: list) -> dict:
        """Conditioner outputs for a batch of metadata dicts ({"prompt": ..., "seconds_total": ...})
        assembled into the DiT's inputs, as ``get_conditioning_inputs`` does."""
        outputs = {}
        for cid, cond in self.numbers.items():
            outputs[cid] = cond([_field(m, cid) for m in metadata])
        param = next(self.dit.parameters())
        for cid, cond in self.texts.items():
            emb, mask = cond([str(_field(m, cid)) for m in metadata])
            outputs[cid] = (emb if emb.dtype == param.dtype else emb.to(dtype=param.dtype), mask)
        return assemble(outputs, self.config.cross_attn_ids, self.config.global_ids)

    # ---- generation --------------------------------------------------------------------------
    def generate(self, prompt: str, seconds: Optional[float] = None, steps: Optional[int] = None,
                 cfg_scale: Optional[float] = None, seed: int = 0, sampler: Optional[str] = None,
                 negative_prompt: Optional[str] = None, batch: int = 1, seconds_start: float = 0.0,
                 sample_size: Optional[int] = None, init_audio=None, init_noise_level: float = 1.0,
                 callback: Optional[Callable[[dict], None]] = None) -> np.ndarray:
        """Audio for ``prompt``: (batch, channels, samples) at ``config.sample_rate`` in the model's dtype,
        trimmed to ``seconds`` (default: the model's whole window). The model always runs on
        ``sample_size`` samples (default: the model's training window), as stable-audio-tools'
        examples do, with ``seconds_total`` conditioning telling it how long the sound is."""
        from .generation import generate
        return generate(self, prompt, seconds=seconds, steps=steps, cfg_scale=cfg_scale, seed=seed, sampler=sampler,
                        negative_prompt=negative_prompt, batch=batch, seconds_start=seconds_start,
                        sample_size=sample_size, init_audio=init_audio, init_noise_level=init_noise_level,
                        callback=callback)

    def decode(self, latents: Tensor) -> Tensor:
        """Audio from latents through the autoencoder, replayed from captured kernels after the first call."""
        return self._decode(self.vae, latents * self.vae_scale if self.vae_scale != 1.0 else latents)

    def denoise(self, x: Tensor, t: Tensor, cond: dict, negative: Optional[dict], cfg_scale: float) -> Tensor:
        """One DiT call with guidance, replayed from a captured kernel list after the first call."""
        neg = negative or {}
        return self._denoise(self.dit, x, t, cond["cross_attn_cond"], cond["global_cond"],
                             neg.get("cross_attn_cond"), neg.get("cross_attn_mask"), cfg_scale=float(cfg_scale))


class _Holder(nn.Module):
    """A plain container, so that state-dict keys follow stable-audio-tools' wrappers
    (``model.model.``, ``pretransform.model.``, ``conditioner.conditioners.<id>.``)."""

    def __init__(self, **modules):
        super().__init__()
        for name, module in modules.items():
            setattr(self, name, module)

    def forward(self, *args, **kwargs):
        raise TypeError("a container of named parts; call its parts")


def _decode_call(vae, latents):
    return vae.decode(latents)


def _denoise_call(dit, x, t, cross, glob, neg_cross, neg_mask, cfg_scale):
    return dit(x, t, cross_attn_cond=cross, global_embed=glob, negative_cross_attn_cond=neg_cross,
               negative_cross_attn_mask=neg_mask, cfg_scale=cfg_scale)


def _field(metadata: dict, key: str):
    if key not in metadata:
        raise KeyError(f"conditioning: metadata has no {key!r} (has {sorted(metadata)})")
    value = metadata[key]
    return value[0] if isinstance(value, (list, tuple)) and len(value) == 1 else value


__all__ = ["StableAudio"]
