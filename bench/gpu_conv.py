"""The Oobleck decoder's convolution layers one by one on the GPU: audiograd beside PyTorch (cuDNN).

Each case is ``conv1d`` (batch 1, float32 data, bias) at the channel count and length it has in
the decoder at 216 latents, in the precision asked for ("tf32": our tensor-core kernel against
cuDNN with TF32 allowed; "fp32": exact on both). Ours runs under ``audiograd.jit`` (so the
padding copy is included, as in the decoder); PyTorch's time includes cuDNN's layout
transposes. Outputs are compared (max |diff| / RMS) and the rate is the convolution's
multiply-adds x 2 over our time.

    python bench/gpu_conv.py [--precision tf32] [--json] [--markdown] [--quick] [--only I,J] [--once I]

``--once I`` runs case I a few times without timing (for ``ncu -k regex:ag_convtc``).
"""
from __future__ import annotations

import argparse

from common import report, row
from gpu import Gpu, rel_err, set_torch_precision

# (channels in, channels out, length, kernel, dilation)
CASES = [
    (1024, 1024, 1728, 7, 1),
    (512, 512, 13824, 7, 3),
    (256, 256, 55296, 7, 9),
    (128, 128, 221184, 7, 1),
    (128, 128, 442368, 7, 1),
    (128, 128, 442368, 7, 9),
    (128, 128, 442368, 1, 1),
    (1024, 1024, 1728, 1, 1),
    (128, 2, 442368, 7, 1),
]


def bench_case(i: int, gpu, precision: str, once: bool):
    """Case ``i``'s table row (None with ``once``: run it a few times, untimed)."""
    import numpy as np
    import torch
    import audiograd as ag
    import audiograd.nn.functional as F
    cin, cout, length, k, d = CASES[i]
    rng = np.random.default_rng(i)
    x = rng.standard_normal((1, cin, length)).astype(np.float32)
    w = (rng.standard_normal((cout, cin, k)) / np.sqrt(cin * k)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    pad = d * (k - 1) // 2
    xa, wa, ba = (ag.tensor(v, device="cuda") for v in (x, w, b))
    xt, wt, bt = (torch.from_numpy(v).cuda() for v in (x, w, b))
    ours = ag.jit(lambda xv, wv, bv: F.conv1d(xv, wv, bv, padding=pad, dilation=d))
    ref = lambda: torch.nn.functional.conv1d(xt, wt, bt, padding=pad, dilation=d)
    with torch.no_grad():
        if once:
            for _ in range(3):
                ours(xa, wa, ba)
            gpu.sync()
            return None
        err = rel_err(ours(xa, wa, ba).numpy(), ref().cpu().numpy())
        t_ours = gpu.time(lambda: ours(xa, wa, ba))
        t_ref = gpu.time(ref)
    flops = 2 * cin * cout * k * length
    return row(f"conv1d {cin}->{cout} x {length}, k={k} d={d}, {precision}", t_ours, t_ref, None,
               note=f"{flops / t_ours / 1e12:.0f} TFLOP/s; max|diff|/RMS {err:.1e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--precision", default="tf32", choices=["fp32", "tf32"])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated case indices")
    ap.add_argument("--once", type=int, default=None, help="run one case a few times, untimed")
    args = ap.parse_args()
    import cupy as cp
    import torch
    import audiograd as ag
    ag.config.cuda_matmul_precision = args.precision
    set_torch_precision(torch, args.precision == "tf32")
    gpu = Gpu(torch, cp, repeat=5 if args.quick else 20, warmup=3)
    if args.once is not None:
        bench_case(args.once, gpu, args.precision, once=True)
        return
    rows = []
    for i in [int(i) for i in args.only.split(",") if i] or range(len(CASES)):
        rows.append(bench_case(i, gpu, args.precision, once=False))
        cp.get_default_memory_pool().free_all_blocks()   # the case's arrays died with its frame
    report(f"decoder convolutions, audiograd vs PyTorch cuDNN ({args.precision}), same GPU", rows, args,
           {"notes": [f"GPU: {torch.cuda.get_device_name()}"]})


if __name__ == "__main__":
    main()
