"""Reading Stable Audio's ``model_config.json`` for text-to-audio models (``diffusion_cond``):
every part checked for its JSON type before use, every unsupported option named."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Union

SAMPLER_DEFAULTS = {
    # SAO 1.0 ("v" objective): Stability's examples use 100 steps, cfg 7 and dpmpp-3m-sde on
    # sigmas 0.3..500
    "v": dict(steps=100, cfg_scale=7.0, sampler="dpmpp-3m-sde", sigma_min=0.3, sigma_max=500.0),
    # SAO Small (rectified-flow denoiser): 8 ping-pong steps without guidance
    "rf_denoiser": dict(steps=8, cfg_scale=1.0, sampler="pingpong", sigma_min=None, sigma_max=1.0),
    "rectified_flow": dict(steps=50, cfg_scale=7.0, sampler="euler", sigma_min=None, sigma_max=1.0),
}


@dataclass
class ConditionerSpec:
    id: str
    type: str  # "t5" or "number"
    config: dict


@dataclass
class GenerationConfig:
    """The parts of a model_config.json that text-to-audio generation uses."""
    sample_rate: int
    sample_size: int
    io_channels: int
    dit: dict
    diffusion_objective: str
    cross_attn_ids: List[str]
    global_ids: List[str]
    cond_dim: int
    conditioners: List[ConditionerSpec]
    pretransform: dict = field(default_factory=dict)
    source: str = "config"

    @property
    def defaults(self) -> dict:
        return SAMPLER_DEFAULTS[self.diffusion_objective]


def _obj(value, where: str, source: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{source}: {where} must be a JSON object, got {type(value).__name__}")
    return value


def _int(value, where: str, source: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{source}: {where} must be a positive integer, got {value!r}")
    return value


def _ids(value, where: str, source: str) -> List[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{source}: {where} must be a list of strings, got {value!r}")
    return value


def read_generation_config(config: Union[dict, str, Path]) -> GenerationConfig:
    """Parse a text-to-audio model_config.json (path or dict) into a ``GenerationConfig``."""
    source = "config"
    if isinstance(config, (str, Path)):
        source = str(config)
        try:
            with open(config, "rb") as f:
                config = json.loads(f.read().decode("utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"model config not found: {source}") from None
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"{source}: not a JSON config ({e})") from None
    cfg = _obj(config, "the config", source)
    if cfg.get("model_type") != "diffusion_cond":
        raise ValueError(f"{source}: model_type is {cfg.get('model_type')!r}; text-to-audio needs 'diffusion_cond'")
    model = _obj(cfg.get("model"), "model", source)
    diffusion = _obj(model.get("diffusion"), "model.diffusion", source)
    if diffusion.get("type") != "dit":
        raise NotImplementedError(f"{source}: diffusion type {diffusion.get('type')!r} is not supported (only 'dit')")
    objective = diffusion.get("diffusion_objective", "v")
    if objective not in SAMPLER_DEFAULTS:
        raise ValueError(f"{source}: unknown diffusion_objective {objective!r}")
    conditioning = _obj(model.get("conditioning", {}), "model.conditioning", source)
    specs = []
    for i, item in enumerate(conditioning.get("configs", []) or []):
        item = _obj(item, f"model.conditioning.configs[{i}]", source)
        kind, cid = item.get("type"), item.get("id")
        if not isinstance(cid, str):
            raise ValueError(f"{source}: model.conditioning.configs[{i}].id must be a string")
        if kind not in ("t5", "number"):
            raise NotImplementedError(f"{source}: conditioner {cid!r} of type {kind!r} is not supported (t5, number)")
        specs.append(ConditionerSpec(cid, kind, dict(_obj(item.get("config", {}), f"conditioner {cid!r} config", source))))
    pretransform = model.get("pretransform")
    if pretransform is not None:
        pretransform = _obj(pretransform, "model.pretransform", source)
        if pretransform.get("type", "autoencoder") != "autoencoder":
            raise NotImplementedError(f"{source}: pretransform type {pretransform.get('type')!r} is not supported")
    return GenerationConfig(
        sample_rate=_int(cfg.get("sample_rate"), "sample_rate", source),
        sample_size=_int(cfg.get("sample_size"), "sample_size", source),
        io_channels=_int(model.get("io_channels"), "model.io_channels", source),
        dit=dict(_obj(diffusion.get("config"), "model.diffusion.config", source)),
        diffusion_objective=objective,
        cross_attn_ids=_ids(diffusion.get("cross_attention_cond_ids"), "cross_attention_cond_ids", source),
        global_ids=_ids(diffusion.get("global_cond_ids"), "global_cond_ids", source),
        cond_dim=_int(conditioning.get("cond_dim", 768), "model.conditioning.cond_dim", source),
        conditioners=specs, pretransform=pretransform or {}, source=source)


def _preset(dit: dict, conditioners: list, cross: list, glob: list, objective: str, sample_size: int) -> dict:
    from .oobleck import SAO_CONFIG
    diffusion = {"type": "dit", "cross_attention_cond_ids": cross, "global_cond_ids": glob, "config": dit}
    if objective != "v":
        diffusion["diffusion_objective"] = objective
    return {"model_type": "diffusion_cond", "sample_rate": 44100, "sample_size": sample_size, "audio_channels": 2,
            "model": {"io_channels": 64, "diffusion": diffusion,
                      "conditioning": {"cond_dim": 768, "configs": conditioners},
                      "pretransform": {"type": "autoencoder", "iterate_batch": True, "config": SAO_CONFIG}}}


def _t5(max_length: int) -> dict:
    return {"id": "prompt", "type": "t5", "config": {"t5_model_name": "t5-base", "max_length": max_length}}


def _number(cid: str, max_val: int) -> dict:
    return {"id": cid, "type": "number", "config": {"min_val": 0, "max_val": max_val}}


# the shapes of the released models (their model_config.json files are gated); used for
# --random-weights runs and benchmarks. SAO Small's autoencoder is taken to be SAO 1.0's.
PRESETS = {
    "sao-1.0": _preset({"io_channels": 64, "embed_dim": 1536, "depth": 24, "num_heads": 24, "cond_token_dim": 768,
                        "global_cond_dim": 1536, "project_cond_tokens": False,
                        "transformer_type": "continuous_transformer"},
                       [_t5(128), _number("seconds_start", 512), _number("seconds_total", 512)],
                       ["prompt", "seconds_start", "seconds_total"], ["seconds_start", "seconds_total"], "v", 2097152),
    "sao-small": _preset({"io_channels": 64, "embed_dim": 1024, "depth": 16, "num_heads": 8, "cond_token_dim": 768,
                          "global_cond_dim": 768, "transformer_type": "continuous_transformer",
                          "attn_kwargs": {"qk_norm": "ln"}},
                         [_t5(64), _number("seconds_total", 256)], ["prompt", "seconds_total"], ["seconds_total"],
                         "rf_denoiser", 524288),
}
