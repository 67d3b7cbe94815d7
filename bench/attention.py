"""Fused attention (float32) against the same attention composed from products and a softmax,
and against PyTorch's ``scaled_dot_product_attention`` (2 threads).

Shapes: Stable Audio's DiT self-attention (B2 H24 L1025 D64) and cross-attention to the
conditioning (Lk 130), a wider head (B2 H8 L257 D128), and T5's encoder attention with its
additive position bias (B1 H12 L128 D64). Each time is the median of several runs after
warm-up, measured in rounds so every side sees the same state of the machine; the ratios are
the other side's time over the fused op's (above 1: the fused op is faster).

    python bench/attention.py [--json] [--markdown] [--quick]
"""
from __future__ import annotations

import json

from common import check_close, fmt_ratio, fmt_time, import_torch, interleaved_median_times, parse_args

# (case, batch, heads, Lq, Lk, D, with a T5-style bias)
CASES = [("dit self B2 H24 L1025 D64", 2, 24, 1025, 1025, 64, False),
         ("dit cross B2 H24 Lq1025 Lk130 D64", 2, 24, 1025, 130, 64, False),
         ("B2 H8 L257 D128", 2, 8, 257, 257, 128, False),
         ("t5 B1 H12 L128 D64 +bias", 1, 12, 128, 128, 64, True)]


def composed(q, k, v, bias, scale):
    """The attention as it is written without the fused op."""
    scores = (q * scale) @ k.transpose(-1, -2)
    if bias is not None:
        scores = scores + bias
    return scores.softmax(-1) @ v


def main():
    args = parse_args(__doc__.splitlines()[0])
    import numpy as np
    import audiograd as ag
    from audiograd.nn.attention import scaled_dot_product_attention
    torch = import_torch()
    rows = []
    for case, b, h, lq, lk, d, with_bias in CASES:
        rng = np.random.default_rng(0)
        q_np, k_np, v_np = (rng.standard_normal(s, dtype=np.float32) for s in
                            ((b, h, lq, d), (b, h, lk, d), (b, h, lk, d)))
        bias_np = rng.standard_normal((1, h, lq, lk), dtype=np.float32) if with_bias else None
        scale = 1.0 / np.sqrt(d)
        q, k, v = ag.tensor(q_np), ag.tensor(k_np), ag.tensor(v_np)
        bias = ag.tensor(bias_np) if with_bias else None
        fns = {"fused": lambda: scaled_dot_product_attention(q, k, v, bias).realize(),
               "composed": lambda: composed(q, k, v, bias, scale).realize()}
        s = np.einsum("bhqd,bhkd->bhqk", q_np.astype(np.float64), k_np.astype(np.float64)) * scale
        if with_bias:
            s = s + bias_np
        p = np.exp(s - s.max(-1, keepdims=True))
        ref = (p / p.sum(-1, keepdims=True)) @ v_np.astype(np.float64)
        check_close(f"fused {case}", fns["fused"]().numpy(), ref, rtol=1e-4, atol=1e-5)
        check_close(f"composed {case}", fns["composed"]().numpy(), ref, rtol=1e-4, atol=1e-5)
        if torch is not None:
            tq, tk, tv = (torch.from_numpy(x) for x in (q_np, k_np, v_np))
            tb = torch.from_numpy(bias_np) if with_bias else None
            fns["torch"] = lambda: torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=tb)
            check_close(f"torch {case}", fns["torch"]().numpy(), ref, rtol=1e-4, atol=1e-5)
        reps = 3 if args.quick else 7
        t = interleaved_median_times(fns, repeat=reps, warmup=2)
        rows.append({"case": case, **{f"{k}_s": v for k, v in t.items()},
                     "composed_over_fused": t["composed"] / t["fused"],
                     "torch_over_fused": t["torch"] / t["fused"] if "torch" in t else None})
    if args.json:
        print(json.dumps({"benchmark": "attention", "rows": rows}, indent=2))
        return
    header = ["case", "fused", "composed", "torch (2 thr)", "composed/fused", "torch/fused"]
    cells = [[r["case"], fmt_time(r["fused_s"]), fmt_time(r["composed_s"]), fmt_time(r.get("torch_s")),
              fmt_ratio(r["composed_s"], r["fused_s"]), fmt_ratio(r.get("torch_s"), r["fused_s"])] for r in rows]
    if args.markdown:
        print("| " + " | ".join(header) + " |\n|" + "|".join(["---"] * len(header)) + "|")
        for c in cells:
            print("| " + " | ".join(c) + " |")
        return
    widths = [max(len(x) for x in col) for col in zip(header, *cells)]
    for c in [header, ["-" * w for w in widths]] + cells:
        print("  ".join(x.ljust(w) for x, w in zip(c, widths)).rstrip())


if __name__ == "__main__":
    main()
