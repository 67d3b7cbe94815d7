"""The two sides of ``bench/generate.py``: each function runs in its own process and returns
a JSON-able dict with ``time_s`` (median) and a small ``sample`` of its output for checking."""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "models"))  # the reference loader of the parity tests

CROSS_TOKENS = {"sao-small": 64 + 1, "sao-1.0": 128 + 2}


def _config(preset: str) -> dict:
    from audiograd.models.sao_config import PRESETS
    return PRESETS[preset]


def _dit_kwargs(preset: str) -> dict:
    diffusion = _config(preset)["model"]["diffusion"]
    cfg = dict(diffusion["config"])
    cfg.pop("transformer_type", None)
    cfg["diffusion_objective"] = diffusion.get("diffusion_objective", "v")
    return cfg


def _step_inputs(preset: str, frames: int, batch: int):
    """Inputs of one denoiser call; ``batch`` 2 means one item with guidance (cfg 7)."""
    cfg = _dit_kwargs(preset)
    rng = np.random.default_rng(1)
    items = 1
    x = rng.standard_normal((items, cfg["io_channels"], frames)).astype(np.float32)
    t = np.full(items, 0.7, np.float32)
    cross = rng.standard_normal((items, CROSS_TOKENS[preset], cfg["cond_token_dim"])).astype(np.float32)
    glob = rng.standard_normal((items, cfg["global_cond_dim"])).astype(np.float32)
    return x, t, cross, glob, (7.0 if batch == 2 else 1.0)


def _timer(device: str, repeat: int):
    def run(fn, sync):
        fn()
        fn()
        sync()
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)
    return run


def ours_step(preset: str, frames: int, batch: int, device: str, repeat: int, precisions=("fp32",)) -> dict:
    import audiograd as ag
    from audiograd.devices.registry import get_device
    from audiograd.models.dit import DiffusionTransformer
    from audiograd.models.random_init import seeded_state
    model = DiffusionTransformer(**_dit_kwargs(preset))
    model.load_state_dict(seeded_state({k: p.shape for k, p in model.named_parameters()}), strict=False)
    model = model.to(device)
    x, t, cross, glob, cfg_scale = _step_inputs(preset, frames, batch)
    args = [ag.tensor(a, device=device) for a in (x, t, cross, glob)]
    result = {}
    for precision in precisions:
        ag.config.cuda_matmul_precision = precision
        step = ag.jit(lambda x, t, c, g: model(x, t, cross_attn_cond=c, global_embed=g, cfg_scale=cfg_scale))
        t0 = time.perf_counter()
        out = step(*args).numpy()
        first = time.perf_counter() - t0
        took = _timer(device, repeat)(lambda: step(*args), get_device(device).synchronize)
        result[precision] = {"time_s": took, "first_s": first, "sample": out.ravel()[:4096].tolist()}
        del step
    return result


def torch_step(preset: str, frames: int, batch: int, device: str, repeat: int, precisions=("fp32",),
               compile: bool = False) -> dict:
    from sat_generation_reference import _load
    from audiograd.models.random_init import seeded_state
    ref = _load()
    torch = ref.torch
    torch.set_num_threads(2)
    model = ref.dit.DiffusionTransformer(**_dit_kwargs(preset)).eval()
    state = seeded_state({k: tuple(p.shape) for k, p in model.named_parameters()})
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
    model = model.to(device)
    x, t, cross, glob, cfg_scale = _step_inputs(preset, frames, batch)
    args = [torch.from_numpy(a).to(device) for a in (x, t, cross, glob)]
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    result = {}
    for precision in precisions:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
        if compile:
            torch._dynamo.reset()
        fn = torch.compile(model) if compile else model

        def call():
            with torch.no_grad():
                return fn(args[0], args[1], cross_attn_cond=args[2], global_embed=args[3], cfg_scale=cfg_scale)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        out = call().float().cpu().numpy()
        sync()
        first = time.perf_counter() - t0
        took = _timer(device, repeat)(call, sync)
        peak = torch.cuda.max_memory_allocated() if device == "cuda" else 0
        result[precision] = {"time_s": took, "first_s": first, "peak_bytes": peak,
                             "sample": out.ravel()[:4096].tolist()}
    return result


if __name__ == "__main__":  # a quick manual check of one side: python bench/generate_sides.py ours step
    import json
    side, case = sys.argv[1], sys.argv[2]
    print(json.dumps({k: v for k, v in globals()[f"{side}_{case}"](**json.loads(sys.argv[3])).items()
                      if k != "sample"}))
    os._exit(0)
