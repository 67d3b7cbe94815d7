"""Tiny Stable Audio configs (model_config.json dicts) for fast tests of generation."""
import copy

from audiograd.models.sao_config import PRESETS
from audiograd.models.t5 import T5_BASE

T5_TINY = dict(T5_BASE, d_model=32, d_kv=16, d_ff=48, num_heads=2, num_layers=2, vocab_size=128)
VAE_TINY = {"encoder": {"type": "oobleck", "config": {"in_channels": 2, "channels": 4, "c_mults": [1, 2],
                                                      "strides": [2, 4], "latent_dim": 16, "use_snake": True}},
            "decoder": {"type": "oobleck", "config": {"out_channels": 2, "channels": 4, "c_mults": [1, 2],
                                                      "strides": [2, 4], "latent_dim": 8, "use_snake": True,
                                                      "final_tanh": False}},
            "bottleneck": {"type": "vae"}, "latent_dim": 8, "downsampling_ratio": 8, "io_channels": 2,
            "sample_rate": 44100}


def tiny_config(preset: str) -> dict:
    cfg = copy.deepcopy(PRESETS[preset])
    cfg["model"]["io_channels"] = 8
    cfg["model"]["diffusion"]["config"].update(io_channels=8, embed_dim=128, depth=2, num_heads=2,
                                               cond_token_dim=64, global_cond_dim=64 * len(
                                                   cfg["model"]["diffusion"]["global_cond_ids"]))
    cfg["model"]["conditioning"]["cond_dim"] = 64
    cfg["model"]["pretransform"]["config"] = VAE_TINY
    cfg["sample_size"] = 8 * 24
    for c in cfg["model"]["conditioning"]["configs"]:
        if c["type"] == "t5":
            c["config"]["max_length"] = 12
    return cfg
