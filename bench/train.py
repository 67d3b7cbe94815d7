"""Training-step pieces, float32: a multi-resolution STFT loss forward+backward and an Adam step.

Cases:

- ``MultiResolutionSTFTLoss`` with auraloss's defaults (fft_sizes [1024, 2048, 512], hop_sizes
  [120, 240, 50], win_lengths [600, 1200, 240], hann window, w_sc = w_log_mag = 1) on input and
  target of shape (4, 1, 65536), audio-like (sums of sines plus noise). audiograd builds the loss
  from an input leaf with requires_grad, runs ``loss.backward()`` and realizes the input's grad;
  the reference is ``auraloss.freq.MultiResolutionSTFTLoss`` with PyTorch (2 threads) doing the
  same. The two loss values must agree (rtol 1e-3).
- an Adam step (lr 1e-3, default betas/eps) on 78,122,626 float32 parameters split into the
  tensor shapes of the Stable Audio Open Oobleck decoder's state dict, with fixed random grads;
  the reference is ``torch.optim.Adam`` with ``fused=True`` and with ``foreach=True`` on the same
  shapes. Steady-state steps are timed after warm-up steps (audiograd compiles on the first).
  audiograd's achieved bandwidth assumes 28 bytes per parameter per step (read param, grad, m, v;
  write param, m, v) and is compared with the machine's copy bandwidth measured in the same run
  (numpy copy of a 1 GiB float32 array, bytes read + written / time).

    python bench/train.py [--json] [--markdown] [--quick]
"""
from __future__ import annotations

import gc
import time

from common import (check_close, fmt_time, import_torch, interleaved_median_times, median_time, median_times, parse_args, report,
                    row)

# ---- the cases ------------------------------------------------------------------------------

STFT_SHAPE = (4, 1, 65536)
SAMPLE_RATE = 44100
ADAM_LR = 1e-3
BYTES_PER_PARAM = 28  # read p, g, m, v; write p, m, v (float32)
COPY_BYTES = 1 << 30


def audio_like(rng, shape):
    """Sums of a few sines with random frequencies/phases/amplitudes plus white noise, float32."""
    import numpy as np
    b, c, t = shape
    n = np.arange(t) / SAMPLE_RATE
    out = np.zeros(shape, np.float64)
    for i in range(b):
        for j in range(c):
            for _ in range(5):
                f = rng.uniform(50, 8000)
                out[i, j] += rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * f * n + rng.uniform(0, 2 * np.pi))
            out[i, j] += 0.01 * rng.standard_normal(t)
    return out.astype(np.float32)


def decoder_shapes():
    """The shapes of the Oobleck decoder's state dict (Stable Audio Open config)."""
    from audiograd.models.oobleck import SAO_CONFIG, OobleckDecoder
    sd = OobleckDecoder(**SAO_CONFIG["decoder"]["config"]).state_dict()
    return [tuple(v.shape) for v in sd.values()]


def copy_bandwidth(repeat: int) -> float:
    """Bytes read + written per second by a numpy copy of a 1 GiB float32 array."""
    import numpy as np
    src = np.ones(COPY_BYTES // 4, np.float32)
    dst = np.empty_like(src)
    t = median_time(lambda: np.copyto(dst, src), repeat=repeat, warmup=2)
    del src, dst
    return 2 * COPY_BYTES / t


# ---- 1. multi-resolution STFT loss ----------------------------------------------------------

def bench_stft(ag, torch, args, rows, notes):
    import numpy as np
    import auraloss
    from audiograd.losses.stft import MultiResolutionSTFTLoss

    rng = np.random.default_rng(0)
    x_np = audio_like(rng, STFT_SHAPE)
    y_np = audio_like(rng, STFT_SHAPE)

    ours = MultiResolutionSTFTLoss()
    ref = auraloss.freq.MultiResolutionSTFTLoss()
    x_ag = ag.tensor(x_np, requires_grad=True)
    y_ag = ag.tensor(y_np)
    x_t = torch.from_numpy(x_np.copy()).requires_grad_(True)
    y_t = torch.from_numpy(y_np.copy())
    last = {}

    def ag_fb():
        x_ag.grad = None
        loss = ours(x_ag, y_ag)
        loss.backward()
        last["ag_loss"] = loss
        return x_ag.grad.realize()

    def torch_fb():
        x_t.grad = None
        loss = ref(x_t, y_t)
        loss.backward()
        last["torch_loss"] = loss
        return x_t.grad

    g_ag = ag_fb().numpy()
    g_t = torch_fb().numpy()
    l_ag = float(last["ag_loss"].numpy())
    l_t = float(last["torch_loss"].detach().numpy())
    check_close("MultiResolutionSTFTLoss value (audiograd vs auraloss)", np.float64(l_ag), np.float64(l_t),
                rtol=1e-3, atol=0.0)
    # the grads are reported, not required to match tightly (the loss has sqrt/log/eps clamps)
    gdiff = float(np.max(np.abs(g_ag - g_t)) / max(np.max(np.abs(g_t)), 1e-30))

    t = median_times({"ag": ag_fb, "torch": torch_fb}, repeat=3 if args.quick else 7, warmup=2)
    rows.append(row(f"MultiResolutionSTFTLoss fwd+bwd x,y {STFT_SHAPE}", t["ag"], t["torch"], None,
                    note=f"loss {l_ag:.6g} vs auraloss {l_t:.6g}; input grad max|diff|/max|ref| {gdiff:.2g}"))
    return {"stft_loss_audiograd": l_ag, "stft_loss_auraloss": l_t, "stft_grad_rel_diff": gdiff}


# ---- 2. Adam step on the Oobleck decoder's shapes ---------------------------------------------

def bench_adam(ag, torch, args, rows, notes):
    import numpy as np
    shapes = decoder_shapes()
    n_params = sum(int(np.prod(s)) for s in shapes)
    warmup, repeat = (2, 3) if args.quick else (3, 9)
    rng = np.random.default_rng(1)
    params_np = [(rng.standard_normal(s, dtype=np.float32) * np.float32(0.02)) for s in shapes]
    grads_np = [rng.standard_normal(s, dtype=np.float32) * np.float32(1e-3) for s in shapes]

    # audiograd
    ps = [ag.tensor(p, requires_grad=True) for p in params_np]
    for p, g in zip(ps, grads_np):
        p.grad = ag.tensor(g)
    from audiograd.optim import Adam
    opt = Adam(ps, lr=ADAM_LR)
    t0 = time.perf_counter()
    opt.step()
    first_step = time.perf_counter() - t0
    steps = {"ag": opt.step}

    # torch, fused and foreach, each on its own copy of the parameters in memory torch allocated
    # (cache-line aligned, as ours is; numpy's own copies would slow torch down)
    torch_params = {}
    for kind in ("fused", "foreach"):
        tp = [torch.from_numpy(p).clone().requires_grad_(True) for p in params_np]
        for p, g in zip(tp, grads_np):
            p.grad = torch.from_numpy(g).clone()
        topt = torch.optim.Adam(tp, lr=ADAM_LR, **{kind: True})
        topt.step()
        steps[kind], torch_params[kind] = topt.step, tp
    times = interleaved_median_times(steps, repeat=repeat, warmup=warmup - 1)

    # every optimizer took the same steps on the same grads: the parameters must agree
    tsteps = 1 + (warmup - 1) + repeat
    for kind, tp in torch_params.items():
        for i in list(range(4)) + [len(tp) - 1]:
            check_close(f"Adam params after {tsteps} steps (audiograd vs torch {kind}), tensor {i}",
                        ps[i].numpy(), tp[i].detach().numpy(), rtol=1e-4, atol=1e-6)
    del opt, ps, steps, torch_params
    gc.collect()

    copy_bw = copy_bandwidth(3 if args.quick else 5)
    ag_bw = BYTES_PER_PARAM * n_params / times["ag"]
    gb = lambda b: f"{b / 1e9:.1f} GB/s"
    case = f"Adam step, {n_params:,} params in {len(shapes)} tensors (Oobleck decoder)"
    rows.append(row(case + " vs torch fused", times["ag"], times["fused"], None,
                    note=f"ours {gb(ag_bw)} = {100 * ag_bw / copy_bw:.0f}% of copy bw {gb(copy_bw)}; "
                         f"torch fused {gb(BYTES_PER_PARAM * n_params / times['fused'])}"))
    rows.append(row(case + " vs torch foreach", times["ag"], times["foreach"], None,
                    note=f"torch foreach {gb(BYTES_PER_PARAM * n_params / times['foreach'])}"))
    rows.append(row(case + ": first step (compile)", first_step, None, None,
                    note="audiograd's first step, kernels compiled or loaded from the cache"))
    notes.append(f"Adam: {BYTES_PER_PARAM} bytes/param/step assumed (read p, g, m, v; write p, m, v); "
                 f"copy bandwidth = 2 x 1 GiB / median time of np.copyto on a 1 GiB float32 array, "
                 f"measured in this run: {gb(copy_bw)}; audiograd first step {fmt_time(first_step)}")
    return {"adam_params": n_params, "adam_tensors": len(shapes), "adam_audiograd_gbps": ag_bw / 1e9,
            "adam_torch_fused_gbps": BYTES_PER_PARAM * n_params / times["fused"] / 1e9,
            "adam_torch_foreach_gbps": BYTES_PER_PARAM * n_params / times["foreach"] / 1e9,
            "copy_gbps": copy_bw / 1e9}


def main():
    args = parse_args(__doc__.splitlines()[0])
    import audiograd as ag
    torch = import_torch()
    if torch is None:
        raise SystemExit("bench/train.py needs PyTorch (and auraloss) for the references")
    rows, notes = [], []
    extra = {}
    extra.update(bench_stft(ag, torch, args, rows, notes))
    gc.collect()
    extra.update(bench_adam(ag, torch, args, rows, notes))
    notes[:0] = ["STFT loss: auraloss.freq.MultiResolutionSTFTLoss defaults on both sides; input requires grad, "
                 "target does not; timed call = loss + loss.backward() + the input grad realized; loss values "
                 "checked to rtol 1e-3",
                 "Adam: lr 1e-3, betas (0.9, 0.999), eps 1e-8; grads fixed (set once on .grad); median of "
                 "steady-state steps after warm-up; parameters checked against each torch variant after the "
                 "same number of steps"]
    report("Training step pieces: multi-resolution STFT loss and Adam, float32", rows, args,
           {"notes": notes, **extra})


if __name__ == "__main__":
    main()
