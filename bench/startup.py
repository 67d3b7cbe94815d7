"""Start-up cost of a 50-kernel program, measured as whole fresh Python processes.

The program is 25 steps of ``x = sin(x * w_i + c_i).sum(-1, keepdim=True) / N + x * d_i`` on a
(256, 1024) float32 tensor, built lazily and realized once at the end. Each step needs two
kernels (the row reduction, then the broadcast add that materializes the new ``x``, which the
next step reads twice), and the distinct constants c_i, d_i make all 50 kernels distinct, so a
cold start compiles 50 kernels. The script checks this with ``audiograd.devices.cpu.kernels.stats``.

* cold start: a fresh process with AUDIOGRAD_CACHE_DIR set to a new empty directory;
* warm start: a second fresh process on the same cache directory; it must compile nothing
  (``stats.compiled == 0``) and load every kernel from disk.

PyTorch (2 threads) and numpy run the same program in fresh processes for context (they have no
compile step; their cold and warm rows are the same measurements). "process" rows are the wall
time of the whole ``python -c`` process (interpreter start, imports, data set-up, run, exit);
"excluding import" rows time only building and running the program inside the process.

    python bench/startup.py [--json] [--markdown] [--quick]
"""
from __future__ import annotations

import shutil
import statistics
import tempfile

from common import parse_args, report, row, run_python, subprocess_env

STEPS, B, N = 25, 256, 1024
EXPECTED_KERNELS = 2 * STEPS

PRELUDE = f"""
import json, time
t_start = time.perf_counter()
STEPS, B, N = {STEPS}, {B}, {N}
"""

DATA = """
rng = np.random.default_rng(0)
x_np = rng.standard_normal((B, N), dtype=np.float32)
ws = [rng.uniform(0.5, 1.5, (1, N)).astype(np.float32) for _ in range(STEPS)]
cs = [0.01 * (i + 1) for i in range(STEPS)]
ds = [1.0 - 0.001 * (i + 1) for i in range(STEPS)]

def reference():
    x = x_np.astype(np.float64)
    for w, c, d in zip(ws, cs, ds):
        x = np.sin(x * w + c).sum(-1, keepdims=True) / N + x * d
    return x

def check(got):
    ref = reference()
    err = float(np.abs(got - ref).max())
    return bool(np.allclose(got, ref, rtol=1e-3, atol=1e-3)), err
"""

AUDIOGRAD_CHILD = PRELUDE + """
import os, pathlib
import numpy as np
import audiograd as ag
from audiograd.devices.cpu.kernels import stats
ag.config.cache_dir = pathlib.Path(os.environ["AUDIOGRAD_CACHE_DIR"])
t_import = time.perf_counter()
""" + DATA + """
t0 = time.perf_counter()
x = ag.tensor(x_np)
for w, c, d in zip(ws, cs, ds):
    x = (x * ag.tensor(w) + c).sin().sum(-1, keepdim=True) * (1.0 / N) + x * d
x.realize()
run_s = time.perf_counter() - t0
ok, err = check(x.numpy())
print(json.dumps({"import_s": t_import - t_start, "run_s": run_s, "ok": ok, "err": err,
                  "compiled": stats.compiled, "loaded": stats.loaded, "memory_hits": stats.memory_hits}))
"""

TORCH_CHILD = PRELUDE + """
import numpy as np
import torch
torch.set_num_threads(2)
t_import = time.perf_counter()
""" + DATA + """
t0 = time.perf_counter()
x = torch.from_numpy(x_np)
for w, c, d in zip(ws, cs, ds):
    x = torch.sin(x * torch.from_numpy(w) + c).sum(-1, keepdim=True) * (1.0 / N) + x * d
run_s = time.perf_counter() - t0
ok, err = check(x.numpy())
print(json.dumps({"import_s": t_import - t_start, "run_s": run_s, "ok": ok, "err": err}))
"""

NUMPY_CHILD = PRELUDE + """
import numpy as np
t_import = time.perf_counter()
""" + DATA + """
t0 = time.perf_counter()
x = x_np
for w, c, d in zip(ws, cs, ds):
    x = np.sin(x * w + np.float32(c)).sum(-1, keepdims=True) * np.float32(1.0 / N) + x * np.float32(d)
run_s = time.perf_counter() - t0
ok, err = check(x)
print(json.dumps({"import_s": t_import - t_start, "run_s": run_s, "ok": ok, "err": err}))
"""


def checked(name: str, r: dict) -> dict:
    if not r["ok"]:
        raise SystemExit(f"MISMATCH: {name} result differs from the float64 numpy reference "
                         f"(max abs err {r['err']:.3g})")
    return r


def med(rs, key):
    return statistics.median(r[key] for r in rs)


def main():
    args = parse_args(__doc__.splitlines()[0])
    reps = 2 if args.quick else 5
    cold, warm = [], []
    for _ in range(reps):
        cache = tempfile.mkdtemp(prefix="audiograd-bench-")
        try:
            env = subprocess_env(AUDIOGRAD_CACHE_DIR=cache)
            c = checked("audiograd (cold)", run_python(AUDIOGRAD_CHILD, env=env))
            w = checked("audiograd (warm)", run_python(AUDIOGRAD_CHILD, env=env))
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        kernels = c["compiled"] + c["loaded"] + c["memory_hits"]
        if c["compiled"] != EXPECTED_KERNELS or kernels != EXPECTED_KERNELS:
            raise SystemExit(f"expected the cold process to compile {EXPECTED_KERNELS} kernels, got {c}")
        if w["compiled"] != 0:
            raise SystemExit(f"the warm process compiled {w['compiled']} kernel(s); it must compile none: {w}")
        if w["loaded"] != EXPECTED_KERNELS:
            raise SystemExit(f"the warm process should load {EXPECTED_KERNELS} kernels from disk, got {w}")
        cold.append(c)
        warm.append(w)
    torch_rs, numpy_rs = [], []
    for _ in range(reps):
        try:
            torch_rs.append(checked("torch", run_python(TORCH_CHILD)))
        except SystemExit as e:
            if "No module named 'torch'" not in str(e):
                raise
        numpy_rs.append(checked("numpy", run_python(NUMPY_CHILD)))
    t_wall = med(torch_rs, "wall_s") if torch_rs else None
    t_run = med(torch_rs, "run_s") if torch_rs else None
    n_wall, n_run = med(numpy_rs, "wall_s"), med(numpy_rs, "run_s")
    rows = [
        row("cold start, whole process", med(cold, "wall_s"), t_wall, n_wall,
            note=f"empty cache; compiled={cold[0]['compiled']}"),
        row("warm start, whole process", med(warm, "wall_s"), t_wall, n_wall,
            note=f"same cache; compiled={warm[0]['compiled']}, loaded={warm[0]['loaded']}"),
        row("cold start, excluding import", med(cold, "run_s"), t_run, n_run, note="build + realize"),
        row("warm start, excluding import", med(warm, "run_s"), t_run, n_run, note="build + realize"),
        row("import time", med(cold, "import_s"), med(torch_rs, "import_s") if torch_rs else None,
            med(numpy_rs, "import_s"), note="import audiograd / torch / numpy"),
    ]
    notes = [f"{EXPECTED_KERNELS}-kernel program ({STEPS} steps x 2 kernels), all kernels distinct; "
             f"medians over {reps} fresh processes of each kind",
             f"warm processes: stats.compiled == 0 in all {reps} runs (every kernel loaded from the disk cache)",
             "torch/numpy: same program in a fresh process; no compile step, so cold == warm for them"]
    report(f"Start-up of a {EXPECTED_KERNELS}-kernel program (fresh processes)", rows, args,
           {"notes": notes, "cold_stats": cold[0], "warm_stats": warm[0]})


if __name__ == "__main__":
    main()
