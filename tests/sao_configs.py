"""Tiny Stable Audio configs (model_config.json dicts) for fast tests of generation."""
import copy
import json

import numpy as np

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


def tiny_config(preset: str, vae: dict = None) -> dict:
    """``preset``'s layout (conditioners, objective) at tiny sizes; ``vae`` replaces VAE_TINY
    (its latent_dim must be 8)."""
    cfg = copy.deepcopy(PRESETS[preset])
    cfg["model"]["io_channels"] = 8
    cfg["model"]["diffusion"]["config"].update(io_channels=8, embed_dim=128, depth=2, num_heads=2,
                                               cond_token_dim=64, global_cond_dim=64 * len(
                                                   cfg["model"]["diffusion"]["global_cond_ids"]))
    cfg["model"]["conditioning"]["cond_dim"] = 64
    cfg["model"]["pretransform"]["config"] = copy.deepcopy(vae or VAE_TINY)
    cfg["sample_size"] = 8 * 24
    for c in cfg["model"]["conditioning"]["configs"]:
        if c["type"] == "t5":
            c["config"]["max_length"] = 12
    return cfg


def tiny_model(cfg: dict):
    """A StableAudio of ``cfg`` with seeded weights and a tiny T5 (64 wide prompt tokens)."""
    from audiograd.models.random_init import seeded_state
    from audiograd.models.stable_audio import StableAudio
    from audiograd.models.t5 import seeded_t5
    from audiograd.models.t5_tokenizer import standin_tokenizer
    from audiograd.models.text_conditioner import TextConditioner
    text = TextConditioner(standin_tokenizer(), seeded_t5(T5_TINY, seed=3), output_dim=64, max_length=12)
    model = StableAudio(cfg, {"prompt": text})
    model.load_state_dict(seeded_state({k: p.shape for k, p in model.named_parameters()}), strict=False)
    return model


def write_files(folder, cfg: dict, model) -> None:
    """model.safetensors, model_config.json and a t5-base folder (config.json, model.safetensors,
    tokenizer.json of the stand-in tokenizer) for ``model``, as users download them."""
    from safetensors.numpy import save_file
    from audiograd.models.t5_tokenizer import standin_backend
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v.numpy()) for k, v in model.state_dict().items()},
              str(folder / "model.safetensors"))
    (folder / "model_config.json").write_text(json.dumps(cfg))
    t5 = folder / "t5"
    t5.mkdir(exist_ok=True)
    (t5 / "config.json").write_text(json.dumps(T5_TINY))
    save_file({k: np.ascontiguousarray(v.numpy()) for k, v in model.texts["prompt"].encoder.state_dict().items()},
              str(t5 / "model.safetensors"))
    standin_backend().save(str(t5 / "tokenizer.json"))
