"""A small MLP's captured training step, where BLAS products and fused kernels alternate.

numpy's BLAS threads and the kernels' OpenMP threads share the cores: whichever pool keeps
spinning after its work starves the other. Each row runs in a fresh process (libgomp reads its
spin setting once, when the first kernel loads):

* audiograd as shipped (``config.omp_spin_count``, exported as GOMP_SPINCOUNT);
* audiograd with libgomp's own default spin count (GOMP_SPINCOUNT=300000), for comparison;
* PyTorch (2 threads) running the same step eagerly.

The step: three linear layers (64 -> 256 -> 256 -> 64, tanh), batch 512, MSE loss, backward,
Adam; audiograd's is captured with ``audiograd.jit``.

    python bench/threads.py [--json] [--markdown] [--quick]
"""
from __future__ import annotations

from common import parse_args, report, row, run_python, subprocess_env

LIBGOMP_DEFAULT_SPIN = "300000"

SETUP = """
import json
import numpy as np
from bench.common import median_time
rng = np.random.default_rng(0)
shapes = [(64, 256), (256, 256), (256, 64)]
weights = [rng.standard_normal(s).astype(np.float32) * 0.1 for s in shapes]
x_np = rng.standard_normal((512, 64)).astype(np.float32)
y_np = rng.standard_normal((512, 64)).astype(np.float32)

def median_ms(fn, repeat):
    return 1e3 * median_time(fn, repeat=repeat, warmup=3)
"""

AUDIOGRAD = SETUP + """
import os
import audiograd as ag
ws = [ag.tensor(w, requires_grad=True) for w in weights]
x, y = ag.tensor(x_np), ag.tensor(y_np)
opt = ag.optim.Adam(ws, lr=1e-3)

def step(a, b):
    opt.zero_grad()
    loss = ((((a @ ws[0]).tanh() @ ws[1]).tanh() @ ws[2] - b) ** 2).mean()
    loss.backward()
    opt.step()
    return loss

run = ag.jit(step)
ms = median_ms(lambda: run(x, y).numpy(), REPEAT)
print(json.dumps({"ms": ms, "spin": os.environ.get("GOMP_SPINCOUNT")}))
"""

TORCH = SETUP + """
import torch
torch.set_num_threads(2)
ws = [torch.tensor(w, requires_grad=True) for w in weights]
x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
opt = torch.optim.Adam(ws, lr=1e-3)

def step():
    opt.zero_grad()
    loss = ((((x @ ws[0]).tanh() @ ws[1]).tanh() @ ws[2] - y) ** 2).mean()
    loss.backward()
    opt.step()
    return loss.item()

print(json.dumps({"ms": median_ms(step, REPEAT)}))
"""


def main():
    args = parse_args(__doc__.splitlines()[0])
    repeat = 10 if args.quick else 40
    env = subprocess_env(AUDIOGRAD_THREADS="2")
    env.pop("GOMP_SPINCOUNT", None)
    ours = run_python(AUDIOGRAD.replace("REPEAT", str(repeat)), env)
    spinning = run_python(AUDIOGRAD.replace("REPEAT", str(repeat)), dict(env, GOMP_SPINCOUNT=LIBGOMP_DEFAULT_SPIN))
    torch = run_python(TORCH.replace("REPEAT", str(repeat)), env)
    case = "MLP 64-256-256-64, batch 512: loss + backward + Adam"
    rows = [row(f"{case}, spin count {ours['spin']} (shipped)", ours["ms"] / 1e3, torch["ms"] / 1e3, None,
                note="audiograd captured with jit; torch eager"),
            row(f"{case}, spin count {LIBGOMP_DEFAULT_SPIN} (libgomp's default)", spinning["ms"] / 1e3,
                torch["ms"] / 1e3, None, note="the same step with the kernels' threads spinning longer")]
    notes = [f"medians of {repeat} steps after 3 warm-ups, each row in a fresh process; 2 threads everywhere"]
    report("BLAS and fused kernels alternating: the kernels' OpenMP spin count", rows, args, {"notes": notes})


if __name__ == "__main__":
    main()
