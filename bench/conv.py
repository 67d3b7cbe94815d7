"""Oobleck/DAC-style convolutions, float32: conv_transpose1d, conv1d (dilated too) and a full residual unit.

Cases (batch 1):

- ``conv_transpose1d`` x (1, 2048, 22), w (2048, 1024, 16), stride 8, padding 4 (an upsampling
  block of a decoder), plus its cold compile time in a fresh process with an empty cache dir;
- ``conv1d`` x (1, 128, 45056), w (128, 128, 7), padding 3, dilation 1 and dilation 9 (padding 27),
  forward and forward+backward;
- ``conv1d`` x (1, 1024, 176), w (1024, 1024, 7), padding 3;
- an Oobleck residual unit at 128 channels x 45056 steps,
  ``y = x + conv1x1(snake_beta(conv7(snake_beta(x, a1, b1), dilation d, padding 3d), a2, b2))``
  with biases and log-scale alpha/beta, d = 1 and d = 9, forward and forward+backward.

audiograd builds the graph from its leaf tensors on every call and realizes the result (forward)
or runs ``(y * g).sum().backward()`` with a fixed random ``g``, which realizes every leaf's grad
(forward+backward; the forward is computed inside that backward). PyTorch (2 threads) runs the
same eagerly, with autograd for the backward. Every audiograd output and some gradients are
checked against a float64 PyTorch reference.

    python bench/conv.py [--json] [--markdown] [--quick]
"""
from __future__ import annotations

import shutil
import statistics
import tempfile

from common import check_close, import_torch, median_times, parse_args, report, row, run_python, subprocess_env

# ---- the cases ------------------------------------------------------------------------------

TCONV = dict(x=(1, 2048, 22), w=(2048, 1024, 16), stride=8, padding=4)
CONVS = [  # (name, x shape, w shape, padding, dilation, with backward)
    ("conv1d (1,128,45056) w(128,128,7) d=1", (1, 128, 45056), (128, 128, 7), 3, 1, True),
    ("conv1d (1,128,45056) w(128,128,7) d=9", (1, 128, 45056), (128, 128, 7), 27, 9, True),
    ("conv1d (1,1024,176) w(1024,1024,7)", (1, 1024, 176), (1024, 1024, 7), 3, 1, False),
]
RES_C, RES_T = 128, 45056
RES_DILATIONS = [1, 9]


def tol(ref) -> dict:
    """rtol 1e-3 and an atol scaled to the reference's magnitude (its RMS)."""
    import numpy as np
    rms = float(np.sqrt(np.mean(np.square(np.asarray(ref, dtype=np.float64)))))
    return dict(rtol=1e-3, atol=1e-3 * max(rms, 1e-12))


def randn(rng, shape, scale=1.0):
    import numpy as np
    return (rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)).astype(np.float32)


# ---- cold compile of the transposed conv, in a fresh process ----------------------------------

CHILD = r"""
import json, os, pathlib, time
import numpy as np
import audiograd as ag
import audiograd.nn.functional as F
ag.config.cache_dir = pathlib.Path(os.environ["AUDIOGRAD_CACHE_DIR"])  # the new empty dir
from audiograd.devices.cpu.kernels import stats
rng = np.random.default_rng(0)
x_np = rng.standard_normal({x!r}, dtype=np.float32)
w_np = (rng.standard_normal({w!r}, dtype=np.float32) / np.float32(np.sqrt({fan_in}))).astype(np.float32)
x, w = ag.tensor(x_np), ag.tensor(w_np)
def run():
    return F.conv_transpose1d(x, w, stride={stride}, padding={padding}).realize()
t0 = time.perf_counter()
y = run()
cold = time.perf_counter() - t0
compiled = stats.compiled
runs = []
for _ in range(5):
    t0 = time.perf_counter()
    run()
    runs.append(time.perf_counter() - t0)
print(json.dumps({{"cold": cold, "run": sorted(runs)[2], "compiled": compiled, "shape": list(y.shape)}}))
"""


def tconv_cold(reps: int) -> dict:
    code = CHILD.format(x=TCONV["x"], w=TCONV["w"], stride=TCONV["stride"], padding=TCONV["padding"],
                        fan_in=TCONV["x"][1])
    results = []
    for _ in range(reps):
        cache = tempfile.mkdtemp(prefix="audiograd-bench-")
        try:
            r = run_python(code, env=subprocess_env(AUDIOGRAD_CACHE_DIR=cache))
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        if r["compiled"] < 1:
            raise SystemExit(f"expected a cold compile for conv_transpose1d, stats.compiled={r['compiled']}")
        results.append(r)
    return {"cold": statistics.median(r["cold"] for r in results),
            "run": statistics.median(r["run"] for r in results),
            "compiled": results[0]["compiled"]}


# ---- helpers for forward / forward+backward timing --------------------------------------------

def fwd_bwd_fns(ag, torch, build_ag, build_t, leaves_np, g_np):
    """Closures running forward+backward in both libraries from fresh leaves' grads.

    ``build_*(*leaves)`` returns the output; leaves are created once (requires_grad) and their
    grads reset before every call. Returns (ag_fn, torch_fn, ag_leaves, torch_leaves)."""
    ag_leaves = [ag.tensor(a, requires_grad=True) for a in leaves_np]
    t_leaves = [torch.from_numpy(a).clone().requires_grad_(True) for a in leaves_np]
    g_ag, g_t = ag.tensor(g_np), torch.from_numpy(g_np)

    def ag_fb():
        for t in ag_leaves:
            t.grad = None
        (build_ag(*ag_leaves) * g_ag).sum().backward()
        return ag_leaves

    def torch_fb():
        for t in t_leaves:
            t.grad = None
        (build_t(*t_leaves) * g_t).sum().backward()
        return t_leaves

    return ag_fb, torch_fb, ag_leaves, t_leaves


def torch_ref64(torch, build_t, leaves_np, g_np, grads: bool):
    """float64 PyTorch output (and leaf grads of (y*g).sum() when ``grads``) as numpy arrays."""
    leaves = [torch.from_numpy(a).double().requires_grad_(grads) for a in leaves_np]
    if grads:
        y = build_t(*leaves)
        (y * torch.from_numpy(g_np).double()).sum().backward()
        return y.detach().numpy(), [l.grad.numpy() for l in leaves]
    with torch.no_grad():
        return build_t(*leaves).numpy(), None


def main():
    args = parse_args(__doc__.splitlines()[0])
    import numpy as np
    import audiograd as ag
    import audiograd.nn.functional as F
    torch = import_torch()
    if torch is None:
        raise SystemExit("bench/conv.py needs PyTorch (the reference and the comparison)")
    TF = torch.nn.functional
    reps = 3 if args.quick else 7
    reps_fb = 3 if args.quick else 5
    rows, notes = [], []

    def time_pair(name, ag_fn, t_fn, repeat, note=""):
        t = median_times({"ag": ag_fn, "torch": t_fn}, repeat=repeat, warmup=2)
        rows.append(row(name, t["ag"], t["torch"], None, note=note))

    # 1. transposed conv ------------------------------------------------------------------------
    rng = np.random.default_rng(0)
    x_np = randn(rng, TCONV["x"])
    w_np = randn(rng, TCONV["w"], 1 / np.sqrt(TCONV["x"][1]))
    kw = dict(stride=TCONV["stride"], padding=TCONV["padding"])
    ref, _ = torch_ref64(torch, lambda x, w: TF.conv_transpose1d(x, w, **kw), [x_np, w_np], None, False)
    x, w = ag.tensor(x_np), ag.tensor(w_np)
    xt, wt = torch.from_numpy(x_np), torch.from_numpy(w_np)
    ag_fn = lambda: F.conv_transpose1d(x, w, **kw).realize()
    t_fn = lambda: TF.conv_transpose1d(xt, wt, **kw)
    check_close("audiograd conv_transpose1d", ag_fn().numpy(), ref, **tol(ref))
    check_close("torch conv_transpose1d", t_fn().numpy(), ref, **tol(ref))
    name = f"conv_transpose1d x{TCONV['x']} w{TCONV['w']} s8 p4"
    time_pair(name + ": fwd", ag_fn, t_fn, reps, note=f"out {tuple(ref.shape)}")
    c = tconv_cold(2 if args.quick else 3)
    rows.append(row(name + ": cold (compile+run)", c["cold"], None, None,
                    note=f"fresh process + empty cache; {c['compiled']} kernel(s) compiled"))
    rows.append(row(name + ": compile only", max(c["cold"] - c["run"], 0.0), None, None,
                    note="cold minus warm run in the same child"))
    del x, w, xt, wt, ref

    def measure(name, build_ag, build_t, leaves, g_np, fwd_note, bwd_note=None, grad_checks=()):
        """Check both libraries against float64 PyTorch, then time forward (and forward+backward)."""
        ref, ref_grads = torch_ref64(torch, build_t, leaves, g_np, bwd_note is not None)
        ag_leaves = [ag.tensor(a) for a in leaves]
        t_leaves = [torch.from_numpy(a) for a in leaves]
        ag_fn = lambda: build_ag(*ag_leaves).realize()
        t_fn = lambda: build_t(*t_leaves)
        check_close(f"audiograd {name}", ag_fn().numpy(), ref, **tol(ref))
        check_close(f"torch {name}", t_fn().numpy(), ref, **tol(ref))
        time_pair(name + ": fwd", ag_fn, t_fn, reps, note=fwd_note)
        if bwd_note is None:
            return
        ag_fb, t_fb, agl, tl = fwd_bwd_fns(ag, torch, build_ag, build_t, leaves, g_np)
        ag_fb()
        for what, i in grad_checks:
            check_close(f"audiograd {name} grad {what}", agl[i].grad.numpy(), ref_grads[i], **tol(ref_grads[i]))
        t_fb()
        check_close(f"torch {name} grad x", tl[0].grad.numpy(), ref_grads[0], **tol(ref_grads[0]))
        time_pair(name + ": fwd+bwd", ag_fb, t_fb, reps_fb, note=bwd_note)

    # 2./3. plain convs -------------------------------------------------------------------------
    for name, xs, ws, pad, dil, with_bwd in CONVS:
        rng = np.random.default_rng(1)
        x_np = randn(rng, xs)
        w_np = randn(rng, ws, 1 / np.sqrt(ws[1] * ws[2]))
        b_np = randn(rng, (ws[0],), 0.1)
        g_np = randn(rng, (xs[0], ws[0], xs[2]))  # padding keeps the length
        kw = dict(padding=pad, dilation=dil)
        build_ag = lambda x, w, b: F.conv1d(x, w, b, **kw)
        build_t = lambda x, w, b: TF.conv1d(x, w, b, **kw)
        grads = (("x", 0), ("weight", 1)) if with_bwd else ()
        measure(name, build_ag, build_t, [x_np, w_np, b_np], g_np, "with bias",
                "grads of x, w, b" if with_bwd else None, grads)

    # 4. Oobleck residual unit --------------------------------------------------------------------
    for d in RES_DILATIONS:
        rng = np.random.default_rng(2)
        C, T = RES_C, RES_T
        leaves = [randn(rng, (1, C, T)),                                  # x
                  randn(rng, (C,), 0.3), randn(rng, (C,), 0.3),           # alpha1, beta1 (log scale)
                  randn(rng, (C, C, 7), 1 / np.sqrt(C * 7)), randn(rng, (C,), 0.1),   # conv7
                  randn(rng, (C,), 0.3), randn(rng, (C,), 0.3),           # alpha2, beta2
                  randn(rng, (C, C, 1), 1 / np.sqrt(C)), randn(rng, (C,), 0.1)]       # conv1x1
        g_np = randn(rng, (1, C, T))

        def build_ag(x, a1, b1, w1, c1, a2, b2, w2, c2, d=d):
            h = F.snake_beta(x, a1, b1, alpha_logscale=True)
            h = F.conv1d(h, w1, c1, padding=3 * d, dilation=d)
            h = F.snake_beta(h, a2, b2, alpha_logscale=True)
            return x + F.conv1d(h, w2, c2)

        def snake_t(x, a, b):
            a, b = a.exp()[None, :, None], b.exp()[None, :, None]
            return x + 1 / (b + 1e-9) * torch.sin(x * a) ** 2

        def build_t(x, a1, b1, w1, c1, a2, b2, w2, c2, d=d):
            h = snake_t(x, a1, b1)
            h = TF.conv1d(h, w1, c1, padding=3 * d, dilation=d)
            h = snake_t(h, a2, b2)
            return x + TF.conv1d(h, w2, c2)

        measure(f"residual unit C={C} T={T} d={d}", build_ag, build_t, leaves, g_np,
                "snake_beta, conv7, snake_beta, conv1x1, + x", "grads of all 9 leaves",
                (("x", 0), ("alpha1", 1), ("beta1", 2), ("w1 (conv7)", 3), ("alpha2", 5), ("w2 (1x1)", 7)))

    notes += [f"medians after 2 warm-ups ({reps} runs forward, {reps_fb} forward+backward); "
              f"audiograd threads = {ag.config.num_threads}, torch threads = 2; float32",
              "forward: audiograd rebuilds the graph from its leaves and realizes the output each call; "
              "torch runs eagerly (leaves without requires_grad)",
              "fwd+bwd: loss = (y * g).sum() with a fixed random g, loss.backward(); audiograd's backward "
              "realizes every leaf grad (the forward runs inside it); grads reset to None before each call",
              "checked against float64 PyTorch with rtol 1e-3, atol 1e-3 * RMS(reference): every output, "
              "grads of x and the weight for the convs, six leaf grads for the residual unit",
              "cold rows: medians over fresh processes, each with a new empty AUDIOGRAD_CACHE_DIR; "
              "'compile only' = first realize minus a warm realize in the same process"]
    report("Convolutions (Oobleck/DAC shapes), float32", rows, args, {"notes": notes})


if __name__ == "__main__":
    main()
