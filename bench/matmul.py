"""Square float32 matmul, 1024x1024 and 4096x4096: audiograd ``(a @ b).realize()`` vs numpy vs PyTorch.

    python bench/matmul.py [--json] [--markdown] [--quick]
"""
from __future__ import annotations

from common import check_close, import_torch, median_times, parse_args, report, row

SIZES = [1024, 4096]


def main():
    args = parse_args(__doc__.splitlines()[0])
    import numpy as np
    import audiograd as ag
    torch = import_torch()
    rows = []
    for n in SIZES:
        reps = (3 if n >= 4096 else 5) if args.quick else (5 if n >= 4096 else 15)
        rng = np.random.default_rng(0)
        a_np = rng.standard_normal((n, n), dtype=np.float32)
        b_np = rng.standard_normal((n, n), dtype=np.float32)
        ref = (a_np.astype(np.float64) @ b_np.astype(np.float64))
        tol = dict(rtol=1e-3, atol=1e-3 * np.sqrt(n))

        a, b = ag.tensor(a_np), ag.tensor(b_np)

        def ag_mm():
            return (a @ b).realize()

        out = ag_mm()
        if out.dtype is not ag.float32 or tuple(out.shape) != (n, n):
            raise SystemExit(f"audiograd matmul: got {out.dtype} {out.shape}, expected float32 {(n, n)}")
        check_close(f"audiograd matmul {n}", out.numpy(), ref, **tol)
        del out
        check_close(f"numpy matmul {n}", a_np @ b_np, ref, **tol)
        fns = {"ag": ag_mm, "np": lambda: a_np @ b_np}
        if torch is not None:
            at, bt = torch.from_numpy(a_np), torch.from_numpy(b_np)
            check_close(f"torch matmul {n}", (at @ bt).numpy(), ref, **tol)
            fns["torch"] = lambda: at @ bt
        t = median_times(fns, repeat=reps, warmup=2)
        ag_s, np_s, torch_s = t["ag"], t["np"], t.get("torch")
        gflop = 2 * n ** 3 / 1e9
        rows.append(row(f"matmul {n}x{n}", ag_s, torch_s, np_s,
                        note=f"{gflop / ag_s:.0f} GFLOP/s ours, {gflop / np_s:.0f} numpy"
                             + (f", {gflop / torch_s:.0f} torch" if torch_s else "")))
    import numpy as np
    blas = "unknown"
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]["name"]
    except Exception:
        pass
    notes = ["medians after 2 warm-ups (15 runs for 1024, 5 for 4096)",
             "audiograd currently schedules matmul as a call to numpy's matmul (BLAS) into its output buffer, "
             "so the numpy ratio should be about 1",
             f"numpy BLAS: {blas}; torch threads: 2"]
    report("Matmul, float32", rows, args, {"notes": notes})


if __name__ == "__main__":
    main()
