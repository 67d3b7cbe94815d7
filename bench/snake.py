"""The snake activation chain ``x + sin(a*x)**2 / (b + 1e-9)`` on a (1, 128, 1_000_000) float32 signal.

``a`` and ``b`` are per-channel, shape (1, 128, 1). audiograd builds the expression from the
input tensors every iteration and calls ``.realize()`` (one fused kernel; the time excludes any
conversion to numpy); the kernel is compiled during warm-up, so the timed runs are steady
state. PyTorch runs eagerly with 2 threads; numpy runs eagerly with one.
In audiograd ``s**2`` is lowered to ``s*s`` (pow special-casing).

    python bench/snake.py [--json] [--markdown] [--quick]
"""
from __future__ import annotations

from common import check_close, import_torch, median_times, parse_args, report, row

CASES = [(1, 128, 1_000_000), (1, 128, 65_536)]


def main():
    args = parse_args(__doc__.splitlines()[0])
    import numpy as np
    import audiograd as ag
    torch = import_torch()
    reps = 3 if args.quick else 7
    rows = []
    for shape in CASES:
        rng = np.random.default_rng(0)
        C = shape[1]
        x_np = rng.standard_normal(shape, dtype=np.float32)
        a_np = rng.uniform(0.5, 2.0, (1, C, 1)).astype(np.float32)
        b_np = rng.uniform(0.5, 1.5, (1, C, 1)).astype(np.float32)

        def np_snake():
            return x_np + np.sin(a_np * x_np) ** 2 / (b_np + np.float32(1e-9))

        ref = np_snake()
        assert ref.dtype == np.float32

        x, a, b = ag.tensor(x_np), ag.tensor(a_np), ag.tensor(b_np)

        def ag_snake():
            return (x + (a * x).sin() ** 2 / (b + 1e-9)).realize()

        out = ag_snake()
        if out.dtype is not ag.float32 or tuple(out.shape) != shape:
            raise SystemExit(f"audiograd snake: got {out.dtype} {out.shape}, expected float32 {shape}")
        check_close(f"audiograd snake {shape}", out.numpy(), ref, rtol=1e-4, atol=1e-4)
        del out
        fns = {"ag": ag_snake, "np": np_snake}
        if torch is not None:
            xt, at, bt = torch.from_numpy(x_np), torch.from_numpy(a_np), torch.from_numpy(b_np)

            def torch_snake():
                return xt + torch.sin(at * xt) ** 2 / (bt + 1e-9)

            check_close(f"torch snake {shape}", torch_snake().numpy(), ref, rtol=1e-4, atol=1e-4)
            fns["torch"] = torch_snake

        # the same chain with every op writing into one preallocated buffer (no page faults
        # on freshly mapped memory, no temporaries): the best an eager library can do here
        buf_np = np.empty_like(x_np)
        binv_np = np.float32(1) / (b_np + np.float32(1e-9))

        def np_inplace():
            np.multiply(a_np, x_np, out=buf_np)
            np.sin(buf_np, out=buf_np)
            np.multiply(buf_np, buf_np, out=buf_np)
            np.multiply(buf_np, binv_np, out=buf_np)
            np.add(buf_np, x_np, out=buf_np)
            return buf_np

        check_close(f"numpy in-place snake {shape}", np_inplace(), ref, rtol=1e-4, atol=1e-4)
        fns["np_ip"] = np_inplace
        if torch is not None:
            buf_t = torch.empty_like(xt)
            bden = bt + 1e-9

            def torch_inplace():
                torch.mul(at, xt, out=buf_t)
                buf_t.sin_()
                buf_t.mul_(buf_t)
                buf_t.div_(bden)
                buf_t.add_(xt)
                return buf_t

            check_close(f"torch in-place snake {shape}", torch_inplace().numpy(), ref, rtol=1e-4, atol=1e-4)
            fns["torch_ip"] = torch_inplace
        del ref
        t = median_times(fns, repeat=reps, warmup=3)
        rows.append(row(f"snake {shape}", t["ag"], t.get("torch"), t["np"], note="eager, fresh outputs"))
        rows.append(row(f"snake {shape}", t["ag"], t.get("torch_ip"), t["np_ip"],
                        note="refs: in-place into a preallocated buffer"))
    notes = [f"medians of {reps} runs after 3 warm-ups; "
             f"audiograd threads = {ag.config.num_threads}",
             "audiograd: one fused kernel per realize (expression rebuilt each iteration, output newly allocated)",
             "'in-place' rows: torch/numpy write every step into one preallocated buffer "
             "(numpy multiplies by a precomputed 1/(b+1e-9)); audiograd column repeated for the ratio"]
    report("Snake activation x + sin(a*x)**2 / (b + 1e-9), float32", rows, args, {"notes": notes})


if __name__ == "__main__":
    main()
