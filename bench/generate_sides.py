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


def peak_bytes(device: str, torch=None) -> int:
    """This process's peak memory: resident set on the CPU (each side runs in its own process),
    bytes held by the device pool on the GPU (CuPy's for ours, PyTorch's caching allocator's)."""
    if device == "cpu":
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if torch is not None:
        return torch.cuda.max_memory_reserved()
    import cupy
    return cupy.get_default_memory_pool().total_bytes()


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
        result[precision] = {"time_s": took, "first_s": first, "peak_bytes": peak_bytes(device),
                             "sample": out.ravel()[:4096].tolist()}
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
        result[precision] = {"time_s": took, "first_s": first, "peak_bytes": peak_bytes(device, torch),
                             "sample": out.ravel()[:4096].tolist()}
    return result


def ours_e2e(preset: str, seconds: float, steps: int, device: str, repeat: int) -> dict:
    from audiograd.devices.registry import get_device
    from audiograd.models.stable_audio import StableAudio
    model = StableAudio.random(_config(preset), seed=0).to(device)
    prompt = "warm arpeggios on house beats 120BPM with drums effect"
    t0 = time.perf_counter()
    model.generate(prompt, seconds=seconds, steps=steps, seed=0)
    first = time.perf_counter() - t0
    took = _timer(device, repeat)(lambda: model.generate(prompt, seconds=seconds, steps=steps, seed=0),
                                  get_device(device).synchronize)
    return {"time_s": took, "first_s": first, "peak_bytes": peak_bytes(device)}


def _torch_parts(ref, preset: str, device: str):
    """stable-audio-tools' parts (and transformers' T5) with the same seeded weights as ours."""
    import transformers
    from audiograd.models.random_init import seeded_state
    from audiograd.models.sao_config import read_generation_config
    from audiograd.models.t5 import T5_BASE
    from audiograd.models.oobleck import SAO_CONFIG
    torch = ref.torch
    gen = read_generation_config(_config(preset))

    def seeded(module, prefix="", seed=0):
        state = seeded_state({prefix + k: tuple(p.shape) for k, p in module.named_parameters()}, seed)
        module.load_state_dict({k[len(prefix):]: torch.from_numpy(v) for k, v in state.items()}, strict=False)
        return module.to(device).eval()
    t5 = seeded(transformers.T5EncoderModel(transformers.T5Config(**dict(T5_BASE, vocab_size=128),
                                                                  dropout_rate=0.0)))
    numbers = {spec.id: seeded(ref.conditioners.NumberConditioner(gen.cond_dim, **spec.config),
                               f"conditioner.conditioners.{spec.id}.")
               for spec in gen.conditioners if spec.type == "number"}
    wrapper = seeded(ref.diffusion.DiTWrapper(diffusion_objective=gen.diffusion_objective, **gen.dit), "model.")
    decoder = seeded(ref.autoencoders.OobleckDecoder(**SAO_CONFIG["decoder"]["config"]), "pretransform.model.decoder.")
    return gen, t5, numbers, wrapper, decoder


def torch_e2e(preset: str, seconds: float, steps: int, device: str, repeat: int) -> dict:
    """stable-audio-tools' generate_diffusion_cond on its own parts, step for step (its T5
    conditioner is built from the hub, so the same steps are spelled out here)."""
    import types
    from sat_generation_reference import _load
    from audiograd.models.t5_tokenizer import standin_tokenizer
    ref = _load()
    torch = ref.torch
    torch.set_num_threads(2)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    gen, t5, numbers, wrapper, decoder = _torch_parts(ref, preset, device)
    tok = standin_tokenizer()
    max_length = next(int(s.config.get("max_length", 128)) for s in gen.conditioners if s.type == "t5")
    prompt = "warm arpeggios on house beats 120BPM with drums effect"
    defaults = gen.defaults
    holder = types.SimpleNamespace(cross_attn_cond_ids=gen.cross_attn_ids, global_cond_ids=gen.global_ids,
                                   input_concat_ids=[], prepend_cond_ids=[])
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def run():
        with torch.no_grad():
            ids, mask = tok([prompt], max_length)
            ids_t, mask_t = torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)
            emb = t5(input_ids=ids_t, attention_mask=mask_t).last_hidden_state.float() * mask_t.unsqueeze(-1).float()
            cond = {"prompt": (emb, mask_t)}
            for cid, c in numbers.items():
                cond[cid] = c([seconds if cid == "seconds_total" else 0.0], device=device)
            inputs = ref.diffusion.ConditionedDiffusionModelWrapper.get_conditioning_inputs(holder, cond)
            noise = torch.randn([1, 64, gen.sample_size // 2048], device=device)
            if gen.diffusion_objective == "v":
                latents = ref.sampling.sample_k(wrapper, noise, None, steps, sampler_type=defaults["sampler"],
                                                sigma_min=defaults["sigma_min"], sigma_max=defaults["sigma_max"],
                                                rho=1.0, device=device, **inputs, cfg_scale=defaults["cfg_scale"],
                                                batch_cfg=True, rescale_cfg=True)
            else:
                latents = ref.sampling.sample_rf(wrapper, noise, init_data=None, steps=steps,
                                                 sampler_type=defaults["sampler"], device=device, **inputs,
                                                 cfg_scale=defaults["cfg_scale"], batch_cfg=True, rescale_cfg=True)
            audio = decoder(latents)
            return audio[..., :int(round(seconds * gen.sample_rate))].cpu()
    t0 = time.perf_counter()
    run()
    first = time.perf_counter() - t0
    return {"time_s": _timer(device, repeat)(run, sync), "first_s": first, "peak_bytes": peak_bytes(device, torch)}


if __name__ == "__main__":  # a quick manual check of one side: python bench/generate_sides.py ours step
    import json
    side, case = sys.argv[1], sys.argv[2]
    print(json.dumps({k: v for k, v in globals()[f"{side}_{case}"](**json.loads(sys.argv[3])).items()
                      if k != "sample"}))
    os._exit(0)
