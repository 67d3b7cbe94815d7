"""Cold compile time of a reduction kernel: (1024, 32768) -> (1024,) sum vs (1024, 16) -> (1024,).

Each cold measurement runs in a fresh Python process (empty in-process kernel memo) with
AUDIOGRAD_CACHE_DIR pointing at a new empty temporary directory (empty disk cache), so the
first ``realize()`` has to generate C, run the compiler and load the library. The child also
times a second, identical realize (memo hit) to separate compile time from run time.
PyTorch and numpy times for the same sums (steady state, in this process) are for context.

    python bench/compile_time.py [--json] [--markdown] [--quick]
"""
from __future__ import annotations

import shutil
import statistics
import tempfile

from common import check_close, import_torch, median_time, parse_args, report, row, run_python, subprocess_env

SHAPES = [(1024, 32768), (1024, 16)]

CHILD = r"""
import json, os, pathlib, time
import numpy as np
import audiograd as ag
ag.config.cache_dir = pathlib.Path(os.environ["AUDIOGRAD_CACHE_DIR"])  # the new empty dir
from audiograd.devices.cpu.kernels import stats
shape = {shape!r}
x_np = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
x = ag.tensor(x_np)
t0 = time.perf_counter()
y = x.sum(-1).realize()
cold = time.perf_counter() - t0
compiled = stats.compiled
got = y.numpy()
ok = bool(np.allclose(got, x_np.astype(np.float64).sum(-1), rtol=1e-4, atol=1e-3))
runs = []
for _ in range(5):
    x2 = ag.tensor(x_np)
    t0 = time.perf_counter()
    x2.sum(-1).realize()
    runs.append(time.perf_counter() - t0)
print(json.dumps({{"cold": cold, "run": sorted(runs)[2], "compiled": compiled, "ok": ok,
                   "max_err": float(np.abs(got - x_np.astype(np.float64).sum(-1)).max())}}))
"""


def cold_compile(shape, reps: int) -> dict:
    results = []
    for _ in range(reps):
        cache = tempfile.mkdtemp(prefix="audiograd-bench-")
        try:
            r = run_python(CHILD.format(shape=shape), env=subprocess_env(AUDIOGRAD_CACHE_DIR=cache))
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        if not r["ok"]:
            raise SystemExit(f"MISMATCH: audiograd sum over {shape} differs from numpy "
                             f"(max abs err {r['max_err']:.3g})")
        if r["compiled"] < 1:
            raise SystemExit(f"expected a cold compile for {shape}, stats.compiled={r['compiled']}")
        results.append(r)
    return {"cold": statistics.median(r["cold"] for r in results),
            "run": statistics.median(r["run"] for r in results),
            "compiled": results[0]["compiled"]}


def main():
    args = parse_args(__doc__.splitlines()[0])
    import numpy as np
    torch = import_torch()
    reps = 2 if args.quick else 5
    rows, notes = [], []
    for shape in SHAPES:
        c = cold_compile(shape, reps)
        x_np = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        np_s = median_time(lambda: x_np.sum(-1), repeat=reps * 2, warmup=2)
        torch_s = None
        if torch is not None:
            xt = torch.from_numpy(x_np)
            check_close(f"torch sum {shape}", xt.sum(-1).numpy(), x_np.astype(np.float64).sum(-1), atol=1e-3)
            torch_s = median_time(lambda: xt.sum(-1), repeat=reps * 2, warmup=2)
        name = f"{shape}->({shape[0]},) sum"
        rows.append(row(f"{name}: cold (compile+run)", c["cold"], None, None,
                        note=f"fresh process + empty cache; {c['compiled']} kernel(s) compiled"))
        rows.append(row(f"{name}: compile only", max(c["cold"] - c["run"], 0.0), None, None,
                        note="cold minus warm run"))
        rows.append(row(f"{name}: warm run", c["run"], torch_s, np_s, note="same process, memo hit"))
    notes.append(f"cold times are medians over {reps} fresh processes, each with a new empty cache dir")
    notes.append("torch/numpy columns (warm-run rows): steady-state time of the same sum, which they run "
                 "without any compile step, for context")
    report("Cold compile time of a sum kernel", rows, args, {"notes": notes})


if __name__ == "__main__":
    main()
