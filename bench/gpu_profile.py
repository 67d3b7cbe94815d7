"""Where the GPU time of one Oobleck decoder pass goes: kernel times by kind, ours and PyTorch's.

Runs the decoder (216 latents, identical weights) once under ``torch.profiler`` (CUPTI sees
every kernel on the device, CuPy's and cuBLAS's too) for audiograd in each precision asked for,
and for PyTorch eager in the same precision, then prints the kernels grouped by name with
their total time and count, largest first. For reading, not for the README's ratios:
``bench/gpu.py`` times the whole pass.

    python bench/gpu_profile.py [--precision tf32] [--latents 216] [--top 25] [--sequence US]
"""
from __future__ import annotations

import argparse
import re
from collections import defaultdict

from gpu import oobleck_pair, set_torch_precision


def kernel_table(prof, top: int) -> str:
    """Device kernels grouped by name (digits and hashes folded), total milliseconds first."""
    total, count = defaultdict(float), defaultdict(int)
    for ev in prof.events():
        if ev.device_type.name != "CUDA":
            continue
        key = re.sub(r"[0-9a-f]{12,}|\d+", "#", ev.name)[:90]
        total[key] += ev.device_time_total / 1e3 if hasattr(ev, "device_time_total") else ev.cuda_time_total / 1e3
        count[key] += 1
    lines = [f"{'ms':>8} {'count':>6}  kernel", f"{sum(total.values()):8.2f} {sum(count.values()):6d}  (all)"]
    for key in sorted(total, key=total.get, reverse=True)[:top]:
        lines.append(f"{total[key]:8.2f} {count[key]:6d}  {key}")
    return "\n".join(lines)


def kernel_sequence(prof, min_us: float) -> str:
    """The device kernels in launch order with their times (those of at least ``min_us``)."""
    events = sorted((ev for ev in prof.events() if ev.device_type.name == "CUDA"), key=lambda ev: ev.time_range.start)
    lines = []
    for ev in events:
        us = ev.time_range.elapsed_us()
        if us >= min_us:
            lines.append(f"{us:8.1f} us  {ev.name[:80]}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--precision", default="tf32", help="comma-separated: fp32,tf32")
    ap.add_argument("--latents", type=int, default=216)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--sequence", type=float, default=None, metavar="US",
                    help="also list our kernels in launch order, those of at least US microseconds")
    args = ap.parse_args()
    import numpy as np
    import torch
    from torch.profiler import ProfilerActivity, profile
    import audiograd as ag
    ref, dec = oobleck_pair("decoder")
    z = np.random.default_rng(1).standard_normal((1, 64, args.latents)).astype(np.float32)
    zt, za = torch.from_numpy(z).cuda(), ag.tensor(z, device="cuda")
    for mode in args.precision.split(","):
        ag.config.cuda_matmul_precision = mode
        set_torch_precision(torch, mode == "tf32")
        run = ag.jit(lambda x: dec(x))
        with ag.no_grad(), torch.no_grad():
            cases = (("audiograd jit", lambda: run(za)), ("audiograd eager", lambda: dec(za).realize()),
                     ("torch eager", lambda: ref(zt)))
            for name, fn in cases:
                for _ in range(3):
                    fn()
                torch.cuda.synchronize()
                with profile(activities=[ProfilerActivity.CUDA]) as prof:
                    fn()
                    torch.cuda.synchronize()
                print(f"\n== {name}, {mode}, {args.latents} latents ==")
                print(kernel_table(prof, args.top))
                if args.sequence is not None and name.startswith("audiograd"):
                    print(kernel_sequence(prof, args.sequence))


if __name__ == "__main__":
    main()
