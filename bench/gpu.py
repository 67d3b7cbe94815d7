"""audiograd's CUDA backend beside PyTorch on the same GPU, in one run, with identical weights.

Cases (batch 1, float32 unless stated):

* Oobleck decoder (SAO 1.0 config) at 216 latents (~10 s of audio): exact fp32 against PyTorch
  eager fp32 (TF32 off for matmuls and cuDNN), and our tf32 mode against PyTorch eager tf32
  and ``torch.compile`` in tf32;
* the decoder at 1024 latents (~47.5 s): time and peak GPU memory (ours: CuPy's pool after
  emptying it; PyTorch: its caching allocator's peak reserved bytes);
* the encoder on ~10 s of stereo (215 latents' worth of samples);
* auraloss' MultiResolutionSTFTLoss (defaults) forward + backward on 4 x 1 x 65536;
* an Adam step on 78,122,626 parameters in the decoder's 182 tensor shapes vs
  ``torch.optim.Adam(fused=True)``.

Weights: stable-audio-tools' own Oobleck classes with seeded random weights of realistic scale
(``audiograd.cli.parity.randomize_reference``), rounded to float32; audiograd loads the same
state dict. Our decoder and encoder run under ``audiograd.jit`` (replayed as CUDA graphs); the
1024-latent decoder also runs eagerly, where buffers are freed as soon as they are dead.
Times: wall time around the call with the device synchronized before and after, median of
several runs after warm-up. Outputs are checked against PyTorch's (max |diff| / RMS).

    python bench/gpu.py [--json] [--markdown] [--quick] [--no-compile]
"""
from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import traceback

from common import check_close, report, row

DECODER_LATENTS = 216
LONG_LATENTS = 1024
ENCODER_LATENTS = 215


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    ap.add_argument("--markdown", action="store_true", help="print the table as markdown")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile (it takes a minute)")
    ap.add_argument("--only", default="", help="comma-separated case names: decoder,long,encoder,stft,adam")
    return ap.parse_args()


class Gpu:
    """Synchronized timing of GPU work on both libraries."""

    def __init__(self, torch, cp, repeat: int, warmup: int):
        self.torch, self.cp, self.repeat, self.warmup = torch, cp, repeat, warmup

    def sync(self) -> None:
        self.cp.cuda.Device().synchronize()
        self.torch.cuda.synchronize()

    def time(self, fn) -> float:
        for _ in range(self.warmup):
            fn()
        self.sync()
        times = []
        for _ in range(self.repeat):
            t0 = time.perf_counter()
            fn()
            self.sync()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)


def rel_err(ours, ref) -> float:
    import numpy as np
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return float(np.abs(ours - ref).max() / (np.sqrt((ref ** 2).mean()) + 1e-30))


def set_torch_precision(torch, tf32: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def oobleck_pair(part: str, seed: int = 0):
    """(torch module fp32 on cuda, audiograd module fp32 on cuda) with the same weights."""
    from audiograd.cli import parity
    from audiograd.models.oobleck import SAO_CONFIG
    ref = parity.build_reference(SAO_CONFIG, part, seed=seed).float().cuda().eval()
    state = {k: v.astype("float32") for k, v in parity.reference_state(ref).items()}
    ours = parity.build_audiograd(SAO_CONFIG, part, state).to("cuda")
    return ref, ours


def bench_decoder(ag, torch, gpu, args, rows, notes):
    import numpy as np
    ref, dec = oobleck_pair("decoder")
    z = np.random.default_rng(1).standard_normal((1, 64, DECODER_LATENTS)).astype(np.float32)
    zt, za = torch.from_numpy(z).cuda(), ag.tensor(z, device="cuda")
    results = {}
    for mode in ("fp32", "tf32"):
        ag.config.cuda_matmul_precision = mode
        set_torch_precision(torch, mode == "tf32")
        run = ag.jit(lambda x: dec(x))  # captured anew: the precision is baked into the launches
        with ag.no_grad(), torch.no_grad():
            ours_out = run(za).numpy()
            ref_out = ref(zt).cpu().numpy()
            err = rel_err(ours_out, ref_out)
            t_ours = gpu.time(lambda: run(za))
            t_ref = gpu.time(lambda: ref(zt))
        results[mode] = (t_ours, t_ref, err)
        rows.append(row(f"decoder {DECODER_LATENTS} latents, {mode} vs torch eager {mode}", t_ours, t_ref, None,
                        note=f"max|diff|/RMS {err:.1e}"))
    if not args.no_compile:
        set_torch_precision(torch, True)
        ag.config.cuda_matmul_precision = "tf32"
        compiled = torch.compile(ref)
        with torch.no_grad():
            t0 = time.perf_counter()
            compiled(zt)
            torch.cuda.synchronize()
            compile_s = time.perf_counter() - t0
            t_comp = gpu.time(lambda: compiled(zt))
        rows.append(row(f"decoder {DECODER_LATENTS} latents, tf32 vs torch.compile tf32", results["tf32"][0],
                        t_comp, None, note=f"torch.compile first call {compile_s:.1f} s"))
    ag.config.cuda_matmul_precision = "fp32"
    set_torch_precision(torch, False)


def bench_long_decoder(ag, torch, gpu, args, rows, notes):
    import numpy as np
    cp = gpu.cp
    ref, dec = oobleck_pair("decoder")
    z = np.random.default_rng(2).standard_normal((1, 64, LONG_LATENTS)).astype(np.float32)
    zt, za = torch.from_numpy(z).cuda(), ag.tensor(z, device="cuda")
    set_torch_precision(torch, False)
    pool = cp.get_default_memory_pool()
    with ag.no_grad(), torch.no_grad():
        ref_out = ref(zt)
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base_t = torch.cuda.memory_reserved()
        ref_out = ref(zt).cpu().numpy()
        peak_t = torch.cuda.max_memory_reserved() - base_t
        alloc_t = torch.cuda.max_memory_allocated()
        gc.collect()
        pool.free_all_blocks()
        base_o = pool.total_bytes()
        ours_out = dec(za).numpy()
        peak_o = pool.total_bytes() - base_o
        err = rel_err(ours_out, ref_out)
        t_ours = gpu.time(lambda: dec(za).realize())
        t_ref = gpu.time(lambda: ref(zt))
    gb = lambda b: f"{b / 2**30:.2f} GiB"
    rows.append(row(f"decoder {LONG_LATENTS} latents, fp32, eager", t_ours, t_ref, None,
                    note=f"peak memory beyond weights: ours {gb(peak_o)}, torch reserved {gb(peak_t)} "
                         f"(allocated peak {gb(alloc_t)}); max|diff|/RMS {err:.1e}"))


def bench_encoder(ag, torch, gpu, args, rows, notes):
    import numpy as np
    ref, enc = oobleck_pair("encoder")
    x = (0.3 * np.random.default_rng(3).standard_normal((1, 2, ENCODER_LATENTS * 2048))).astype(np.float32)
    xt, xa = torch.from_numpy(x).cuda(), ag.tensor(x, device="cuda")
    set_torch_precision(torch, False)
    run = ag.jit(lambda v: enc(v))
    with ag.no_grad(), torch.no_grad():
        err = rel_err(run(xa).numpy(), ref(xt).cpu().numpy())
        t_ours = gpu.time(lambda: run(xa))
        t_ref = gpu.time(lambda: ref(xt))
    rows.append(row(f"encoder {x.shape[2]} samples (~10 s), fp32", t_ours, t_ref, None,
                    note=f"max|diff|/RMS {err:.1e}"))


def bench_stft(ag, torch, gpu, args, rows, notes):
    import numpy as np
    import auraloss
    from audiograd.losses import MultiResolutionSTFTLoss
    rng = np.random.default_rng(4)
    t = np.arange(65536) / 44100.0
    x = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.1 * rng.standard_normal((4, 1, 65536))).astype(np.float32)
    y = (0.5 * np.sin(2 * np.pi * 445 * t) + 0.1 * rng.standard_normal((4, 1, 65536))).astype(np.float32)
    crit_t, crit_a = auraloss.freq.MultiResolutionSTFTLoss().cuda(), MultiResolutionSTFTLoss()
    xt = torch.from_numpy(x).cuda().requires_grad_(True)
    yt = torch.from_numpy(y).cuda()
    xa, ya = ag.tensor(x, device="cuda", requires_grad=True), ag.tensor(y, device="cuda")

    def step(xv, yv):
        loss = crit_a(xv, yv)
        loss.backward()
        return loss, xv.grad

    run = ag.jit(step)

    def torch_step():
        xt.grad = None
        loss = crit_t(xt, yt)
        loss.backward()
        return loss

    loss_a, grad_a = run(xa, ya)
    loss_t = torch_step()
    check_close("MR-STFT loss (GPU)", loss_a.numpy(), loss_t.detach().cpu().numpy(), rtol=1e-3, atol=1e-5)
    g_ours, g_ref = grad_a.numpy(), xt.grad.cpu().numpy()
    gerr = float(abs(g_ours - g_ref).max() / abs(g_ref).max())
    t_ours = gpu.time(lambda: run(xa, ya))
    t_ref = gpu.time(torch_step)
    rows.append(row("MultiResolutionSTFTLoss fwd+bwd (4, 1, 65536), auraloss defaults", t_ours, t_ref, None,
                    note=f"loss {float(loss_a.numpy()):.5f} vs {float(loss_t.detach()):.5f}; "
                         f"grad max|diff|/max|ref| {gerr:.1e}"))


def bench_adam(ag, torch, gpu, args, rows, notes):
    import numpy as np
    from train import decoder_shapes
    from audiograd.optim import Adam
    shapes = decoder_shapes()
    rng = np.random.default_rng(5)
    params = [(rng.standard_normal(s, dtype=np.float32) * np.float32(0.02)) for s in shapes]
    grads = [rng.standard_normal(s, dtype=np.float32) * np.float32(1e-3) for s in shapes]
    ps = [ag.tensor(p, device="cuda", requires_grad=True) for p in params]
    for p, g in zip(ps, grads):
        p.grad = ag.tensor(g, device="cuda")
    opt = Adam(ps, lr=1e-3)
    tp = [torch.from_numpy(p).cuda().requires_grad_(True) for p in params]
    for p, g in zip(tp, grads):
        p.grad = torch.from_numpy(g).cuda()
    topt = torch.optim.Adam(tp, lr=1e-3, fused=True)
    t_ours = gpu.time(opt.step)
    t_ref = gpu.time(topt.step)
    steps = gpu.warmup + gpu.repeat
    for i in (0, 1, len(ps) - 1):
        check_close(f"Adam params after {steps} steps, tensor {i}", ps[i].numpy(), tp[i].detach().cpu().numpy(),
                    rtol=1e-4, atol=1e-6)
    n = sum(int(np.prod(s)) for s in shapes)
    rows.append(row(f"Adam step, {n:,} params in {len(shapes)} tensors vs torch fused", t_ours, t_ref, None,
                    note=f"ours {28 * n / t_ours / 1e12:.2f} TB/s, torch {28 * n / t_ref / 1e12:.2f} TB/s "
                         f"(28 bytes per parameter)"))


CASES = {"decoder": bench_decoder, "long": bench_long_decoder, "encoder": bench_encoder, "stft": bench_stft,
         "adam": bench_adam}


def main():
    args = parse()
    import cupy as cp
    import torch
    import audiograd as ag
    gpu = Gpu(torch, cp, repeat=3 if args.quick else 10, warmup=2 if args.quick else 3)
    rows, notes = [], []
    chosen = [c for c in args.only.split(",") if c] or list(CASES)
    for name in chosen:
        try:
            CASES[name](ag, torch, gpu, args, rows, notes)
        except Exception:  # one broken case must not hide the others' numbers
            traceback.print_exc()
            rows.append(row(f"{name}: FAILED", None, None, None, note=traceback.format_exc().splitlines()[-1]))
        gc.collect()
        cp.get_default_memory_pool().free_all_blocks()
        torch.cuda.empty_cache()
    notes.append(f"GPU: {torch.cuda.get_device_name()}; PyTorch {torch.__version__}; CuPy {cp.__version__}")
    notes.append("the torch column is PyTorch on the same GPU (eager unless the case says torch.compile)")
    report("audiograd CUDA vs PyTorch, same GPU, same run", rows, args, {"notes": notes})
    if any(r["case"].endswith("FAILED") for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
