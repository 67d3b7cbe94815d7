"""Stable Audio Open generation: audiograd beside stable-audio-tools (PyTorch), same run, same weights.

Cases:

* one DiT step (the denoiser call the samplers make: batch 2 = conditional + unconditional
  with guidance, batch 1 without): SAO Small at 256 latents (11.9 s window), SAO 1.0 at 1024
  latents (47.6 s), float32;
* a whole generation from a prompt: T5 (t5-base's shape), number conditioners, the sampler
  and the Oobleck decoder, trimmed to the requested seconds: SAO Small, 11 s of audio, 8
  ping-pong steps, no guidance (Stability's settings for it); on the GPU also SAO 1.0, 47 s,
  100 dpmpp-3m-sde steps with guidance 7.

Weights: seeded random values of realistic scale keyed by parameter name
(``audiograd.models.random_init``), identical on both sides; the weights are gated, and speed
does not depend on their values. The reference is stable-audio-tools' own DiT
(``DiffusionTransformer``), sampler functions (``sample_k`` / ``sample_rf`` on k-diffusion),
transformers' ``T5EncoderModel`` and stable-audio-tools' Oobleck decoder, in eager PyTorch
(and ``torch.compile`` on the GPU). On the CPU (2 threads) each library runs in its own process,
so neither's idle worker threads slow the other. Times are medians of several runs after
warm-up; the real-time factor (RTF) is generation time / audio seconds. Peak memory is each
process's resident set on the CPU (weights, captures and all) and the bytes its pool holds on
the GPU (CuPy's for ours, PyTorch's caching allocator's reserved bytes).

    python bench/generate.py [--device cpu|cuda] [--quick] [--json] [--markdown] [--only step,e2e]
"""
from __future__ import annotations

import argparse
import json
import sys

from common import report, row, run_python, subprocess_env

STEP_CASES = {"cpu": [("sao-small", 256, 1), ("sao-small", 256, 2)],
              "cuda": [("sao-small", 256, 2), ("sao-1.0", 1024, 2)]}


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--only", default="step,e2e", help="comma-separated: step, e2e")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile on the GPU")
    return ap.parse_args()


def child(side: str, case: str, params: dict) -> dict:
    """Run one side of one case in a fresh process (bench/generate_sides.py does the work)."""
    code = ("import sys, json; sys.path.insert(0, 'bench'); import generate_sides as s; "
            f"print(json.dumps(s.{side}_{case}(**json.loads({json.dumps(json.dumps(params))}))))")
    return run_python(code, env=subprocess_env(), timeout=3000)


def main() -> None:
    args = parse()
    only = set(args.only.split(","))
    repeat = 2 if args.quick else 5
    rows, notes = [], []
    if "step" in only:
        modes = ("fp32", "tf32") if args.device == "cuda" else ("fp32",)
        for preset, frames, batch in STEP_CASES[args.device]:
            p = dict(preset=preset, frames=frames, batch=batch, device=args.device, repeat=repeat, precisions=modes)
            ours = child("ours", "step", p)
            eager = child("torch", "step", dict(p, compile=False))
            compiled = child("torch", "step", dict(p, compile=True)) if args.device == "cuda" and not args.no_compile \
                else None
            label = f"{preset} DiT step, {frames} latents, batch {batch}"
            for mode in modes:
                o, e = ours[mode], eager[mode]
                rows.append(row(f"{label}, {mode} vs eager", o["time_s"], e["time_s"], None,
                                note=f"max|diff|/max {abs_err(o, e):.1e}; {peaks(o, e)}"))
                if compiled is not None:
                    c = compiled[mode]
                    rows.append(row(f"{label}, {mode} vs torch.compile", o["time_s"], c["time_s"], None,
                                    note=f"torch.compile first call {c['first_s']:.0f} s"))
    if "e2e" in only:
        cases = [("sao-small", 11.0, 8)] + ([("sao-1.0", 47.0, 100)] if args.device == "cuda" else [])
        for preset, seconds, steps in cases:
            p = dict(preset=preset, seconds=seconds, steps=steps, device=args.device, repeat=1 if args.quick else 3)
            ours = child("ours", "e2e", p)
            ref = child("torch", "e2e", p)
            rows.append(row(f"{preset} generation, {seconds:g} s of audio, {steps} steps", ours["time_s"],
                            ref["time_s"], None, note=f"RTF ours {ours['time_s'] / seconds:.3f}, "
                                                      f"torch {ref['time_s'] / seconds:.3f}; {peaks(ours, ref)}"))
    report(f"Stable Audio Open generation ({args.device}, float32)", rows, args, {"notes": notes})


def peaks(ours: dict, ref: dict) -> str:
    """Peak memory of both sides (process RSS on the CPU, pool held on the GPU)."""
    return f"peak memory ours {ours['peak_bytes'] / 2**30:.2f} GiB, torch {ref['peak_bytes'] / 2**30:.2f} GiB"


def abs_err(a: dict, b: dict) -> float:
    import numpy as np
    x, y = np.asarray(a["sample"]), np.asarray(b["sample"])
    return float(np.abs(x - y).max() / (np.abs(y).max() + 1e-30))


if __name__ == "__main__":
    sys.exit(main())
