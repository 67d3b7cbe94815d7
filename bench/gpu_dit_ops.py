"""The SAO 1.0 DiT's products one by one on the GPU: audiograd beside PyTorch, same inputs.

Each case is one op of a DiT layer at 1024 latents, batch 2 (classifier-free guidance): the
linear layers (``x @ W^T`` over (2, 1025, C), as the layers call them) and the two attentions
(self over 1025 tokens, cross to 130 prompt tokens; 24 heads of 64). Ours runs under
``audiograd.jit`` (a graph replay per call), PyTorch eagerly; each side issues 20 calls per
timed run, so launch costs overlap the GPU work as they do inside a step. Outputs are compared
(max |diff| / RMS) and the rate is the op's multiply-adds x 2 over our time.

    python bench/gpu_dit_ops.py [--precision tf32] [--json] [--markdown] [--quick]
"""
from __future__ import annotations

import argparse

from common import report, row
from gpu import Gpu, rel_err, set_torch_precision

TOKENS, WIDTH, HEADS = 1025, 1536, 24
# (name, input features, output features, rows per batch item)
LINEARS = [("self-attention qkv", WIDTH, 3 * WIDTH, TOKENS), ("attention out", WIDTH, WIDTH, TOKENS),
           ("cross-attention kv", 768, 2 * WIDTH, 130), ("feed-forward in (GLU)", WIDTH, 8 * WIDTH, TOKENS),
           ("feed-forward out", 4 * WIDTH, WIDTH, TOKENS)]
ATTENTIONS = [("self-attention", TOKENS, TOKENS), ("cross-attention", TOKENS, 130)]
CALLS = 20


def _time(gpu, fn) -> float:
    return gpu.time(lambda: [fn() for _ in range(CALLS)]) / CALLS


def linear_row(gpu, case, precision):
    import numpy as np
    import torch
    import audiograd as ag
    import audiograd.nn.functional as F
    name, cin, cout, rows = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, rows, cin)).astype(np.float32)
    w = (rng.standard_normal((cout, cin)) / np.sqrt(cin)).astype(np.float32)
    xa, wa = ag.tensor(x, device="cuda"), ag.tensor(w, device="cuda")
    xt, wt = torch.from_numpy(x).cuda(), torch.from_numpy(w).cuda()
    ours = ag.jit(lambda a, b: F.linear(a, b))
    err = rel_err(ours(xa, wa).numpy(), torch.nn.functional.linear(xt, wt).cpu().numpy())
    t_ours = _time(gpu, lambda: ours(xa, wa))
    t_ref = _time(gpu, lambda: torch.nn.functional.linear(xt, wt))
    flops = 2 * 2 * rows * cin * cout
    return row(f"linear {name} ({2 * rows}x{cin} @ {cin}x{cout}), {precision}", t_ours, t_ref, None,
               note=f"{flops / t_ours / 1e12:.0f} TFLOP/s; max|diff|/RMS {err:.1e}")


def attention_row(gpu, case, precision):
    import numpy as np
    import torch
    import audiograd as ag
    import audiograd.nn.functional as F
    name, lq, lk = case
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((2, HEADS, n, 64)).astype(np.float32) for n in (lq, lk, lk))
    qa, ka, va = (ag.tensor(a, device="cuda") for a in (q, k, v))
    qt, kt, vt = (torch.from_numpy(a).cuda() for a in (q, k, v))
    ours = ag.jit(lambda a, b, c: F.scaled_dot_product_attention(a, b, c))
    ref = lambda: torch.nn.functional.scaled_dot_product_attention(qt, kt, vt)
    err = rel_err(ours(qa, ka, va).numpy(), ref().cpu().numpy())
    t_ours = _time(gpu, lambda: ours(qa, ka, va))
    t_ref = _time(gpu, ref)
    flops = 4 * 2 * HEADS * lq * lk * 64
    return row(f"{name} ({2 * HEADS} heads, {lq} x {lk} tokens), {precision}", t_ours, t_ref, None,
               note=f"{flops / t_ours / 1e12:.0f} TFLOP/s; max|diff|/RMS {err:.1e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--precision", default="tf32", choices=["fp32", "tf32"])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    import cupy as cp
    import torch
    import audiograd as ag
    ag.config.cuda_matmul_precision = args.precision
    set_torch_precision(torch, args.precision == "tf32")
    gpu = Gpu(torch, cp, repeat=3 if args.quick else 10, warmup=2)
    rows = [linear_row(gpu, c, args.precision) for c in LINEARS]
    rows += [attention_row(gpu, c, args.precision) for c in ATTENTIONS]
    report(f"SAO 1.0 DiT ops, audiograd vs PyTorch ({args.precision}), same GPU", rows, args,
           {"notes": [f"GPU: {torch.cuda.get_device_name()}",
                      "PyTorch's attention is its scaled_dot_product_attention (its fused kernels)"]})


if __name__ == "__main__":
    main()
