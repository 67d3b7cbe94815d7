"""One autoencoder training step pair (generator step + discriminator step) of audiograd's
``AutoencoderTrainingWrapper`` beside stable-audio-tools' own ``AutoencoderTrainingWrapper``.

The reference is stable-audio-tools' ``training/autoencoders.py`` imported unchanged, its real
``training_step`` driven without Lightning's Trainer by ``tests/training/sat_training_reference.py``
(stand-ins for pytorch_lightning, wandb and the plotting module; ``optimizers()``,
``lr_schedulers()``, ``manual_backward`` and ``global_step`` as the Trainer provides them in
manual optimization). Both sides use the training recipe of stable-audio-tools'
``stable_audio_2_0_vae.json`` (Stable Audio Open's autoencoder): EnCodec STFT discriminator
(filters 64, 5 scales), perceptual sum-and-difference MR-STFT plus per-channel MR-STFT (7 scales),
KL weight 1e-4, adversarial 0.1, feature matching 5.0, AdamW betas (0.8, 0.99) with lr 1.5e-4 /
3e-4 and weight decay 1e-3, EMA of the autoencoder's weights; ExponentialLR (gamma 0.999996)
stands in for SAO's InverseLR, which stable-audio-tools 0.0.19 cannot build with current PyTorch.

Cases (float32, a "pair" = global steps 2k (generator) and 2k + 1 (discriminator)):

* ``--device cpu`` (default): a small stereo Oobleck (channels 32, c_mults [1, 2, 4], strides
  [2, 4, 8], latent 32), batch 2 x 8192 samples, the discriminator narrowed to 8 filters (its 5
  STFT scales kept); sides: audiograd (generated C) and stable-audio-tools on PyTorch eager, each
  with as many threads as the machine has cores. Pairs are timed in interleaved rounds (one pair
  of each side per round, a short pause before each); the load average before and after is
  noted, since other processes on the cores skew both sides. (At 2 x 32768 with SAO's 64 filters
  audiograd's step grew past 20 GiB of host memory and was killed; the discriminator's 2-D
  convolutions gather their input in column form, ``audiograd/nn/conv.py``.)
* ``--device cuda``: the Stable Audio Open autoencoder (``audiograd.models.oobleck.SAO_CONFIG``:
  channels 128, c_mults [1, 2, 4, 8, 16], strides [2, 4, 4, 8, 8], latent 64), batch 4 x 65536;
  sides: audiograd (CUDA), stable-audio-tools eager, and stable-audio-tools with ``Module.compile()``
  (torch.compile in place) on its encoder, decoder and discriminator (the losses stay eager); a
  side whose compile fails is reported as failed. Each precision is a row pair: "fp32" (PyTorch's
  TF32 off for matmuls and cuDNN; ours ``config.cuda_matmul_precision = "fp32"``) and "tf32"
  (``torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True``; ours
  ``"tf32"``). Sides run one after another, each alone on the GPU, for its peak memory: PyTorch's
  ``torch.cuda.max_memory_reserved()`` after ``reset_peak_memory_stats()``; ours CuPy's memory
  pool (where audiograd keeps its buffers) ``total_bytes()`` after ``free_all_blocks()``, the
  largest seen after any pair. Both include weights, optimizer state and EMA.

``--batch``, ``--samples`` and ``--disc-filters`` override the case's sizes.
Every side starts from the same weights (stable-audio-tools' default initialization, seed 0,
copied into ours and into each fresh PyTorch copy) and sees the same batches (sums of sines plus
noise). The first pair passes the same VAE noise to both sides and their losses (each term the
step logs) are compared, rtol 1e-3 in fp32 (1e-2 in tf32); that pair is the first warm-up pair
(audiograd compiles its kernels there). After the warm-up the VAE draws its own noise; the
median of the timed pairs is reported, with the device synchronized around each pair. Ratios are
stable-audio-tools / audiograd (above 1: audiograd is faster). As documented in audiograd's
wrapper, its discriminator step does not differentiate through the autoencoder and its generator
step does not differentiate into the discriminator; stable-audio-tools' step does both (as shipped).

Needs torch, stable-audio-tools (0.0.19, with einops, alias-free-torch, ema-pytorch) and
torchaudio (its ``Spectrogram`` is the reference discriminator's); CuPy for ``--device cuda``.

    python bench/train_ae.py [--device cpu|cuda] [--json] [--markdown] [--quick] [--no-compile]
                             [--batch N] [--samples N] [--disc-filters N]
"""
from __future__ import annotations

import argparse
import copy
import gc
import importlib
import importlib.util
import math
import os
import statistics
import sys
import time
import traceback
import types

from common import REPO_ROOT, fmt_time, report, row

TESTS = REPO_ROOT / "tests"
SAMPLE_RATE = 44100
LR = 1.5e-4
USE_EMA = True

_SCALES = [2048, 1024, 512, 256, 128, 64, 32]
_DISC_SCALES = [2048, 1024, 512, 256, 128]
# the "training" section of stable-audio-tools' stable_audio_2_0_vae.json
SAO_LOSS_CONFIG = {
    "discriminator": {"type": "encodec",
                      "config": {"filters": 64, "n_ffts": _DISC_SCALES, "hop_lengths": [s // 4 for s in _DISC_SCALES],
                                 "win_lengths": _DISC_SCALES},
                      "weights": {"adversarial": 0.1, "feature_matching": 5.0}},
    "spectral": {"type": "mrstft",
                 "config": {"fft_sizes": _SCALES, "hop_sizes": [s // 4 for s in _SCALES], "win_lengths": _SCALES,
                            "perceptual_weighting": True},
                 "weights": {"mrstft": 1.0}},
    "time": {"type": "l1", "weights": {"l1": 0.0}},
    "bottleneck": {"type": "kl", "weights": {"kl": 1e-4}},
}
# SAO's config schedules both learning rates with InverseLR (inv_gamma 200000, power 0.5, warmup
# 0.999), but stable-audio-tools 0.0.19's InverseLR passes ``verbose`` positionally to
# LRScheduler.__init__, which current PyTorch rejects (TypeError): both sides use ExponentialLR
# as stable_audio_1_0_vae.json does (a scheduler step is a few scalar operations either way)
_SCHEDULER = {"type": "ExponentialLR", "config": {"gamma": 0.999996}}
SAO_OPTIMIZERS = {
    "autoencoder": {"optimizer": {"type": "AdamW", "config": {"betas": [0.8, 0.99], "lr": 1.5e-4, "weight_decay": 1e-3}},
                    "scheduler": _SCHEDULER},
    "discriminator": {"optimizer": {"type": "AdamW", "config": {"betas": [0.8, 0.99], "lr": 3e-4, "weight_decay": 1e-3}},
                      "scheduler": _SCHEDULER},
}


def _oobleck(channels, c_mults, strides, latent_dim):
    """A stereo Oobleck VAE config as stable-audio-tools writes it (encoder emits 2 x latent_dim)."""
    common = dict(channels=channels, c_mults=list(c_mults), strides=list(strides), use_snake=True)
    return {"encoder": {"type": "oobleck", "config": dict(common, in_channels=2, latent_dim=2 * latent_dim)},
            "decoder": {"type": "oobleck", "config": dict(common, out_channels=2, latent_dim=latent_dim,
                                                          final_tanh=False)},
            "bottleneck": {"type": "vae"}, "latent_dim": latent_dim,
            "downsampling_ratio": math.prod(strides), "io_channels": 2, "sample_rate": SAMPLE_RATE}


SMALL_CONFIG = _oobleck(32, [1, 2, 4], [2, 4, 8], 32)
CPU_DISC_FILTERS = 8  # the CPU case: SAO's recipe with a narrower discriminator
def loss_config(filters):
    """SAO's loss recipe with ``filters`` in the discriminator (SAO: 64)."""
    out = copy.deepcopy(SAO_LOSS_CONFIG)
    out["discriminator"]["config"]["filters"] = filters
    return out


LOSS_RTOL = {"fp32": 1e-3, "tf32": 1e-2}


def log(msg: str) -> None:
    print(f"[train_ae] {msg}", file=sys.stderr, flush=True)


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    ap.add_argument("--markdown", action="store_true", help="print the table as markdown")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                    help="cpu: small Oobleck, batch 2 x 32768; cuda: the SAO autoencoder, batch 4 x 65536")
    ap.add_argument("--no-compile", action="store_true", help="cuda: skip the torch.compile side")
    ap.add_argument("--batch", type=int, default=None, help="override the batch size")
    ap.add_argument("--samples", type=int, default=None, help="override the samples per item")
    ap.add_argument("--disc-filters", type=int, default=None,
                    help=f"override the discriminator's filters (cpu {CPU_DISC_FILTERS}, cuda 64 as SAO)")
    return ap.parse_args()


# ---- the reference ---------------------------------------------------------------------------

def _pytest_standin() -> None:
    """``sat_training_reference`` calls ``pytest.skip`` when something is missing; without pytest
    (a bare GPU machine) that becomes a clear exit. Its checks run here first anyway."""
    mod = types.ModuleType("pytest")
    mod.__doc__ = "stand-in registered by bench/train_ae.py: pytest is not installed"

    def skip(reason="", allow_module_level=False):
        raise SystemExit(f"bench/train_ae.py: reference unavailable: {reason}")
    mod.skip = skip
    sys.modules["pytest"] = mod


def load_sat():
    """(torch, Oobleck reference classes, stable-audio-tools' training.autoencoders, run_step);
    SystemExit naming what is missing otherwise."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    if importlib.util.find_spec("pytest") is None:
        _pytest_standin()
    try:
        import torch
    except ImportError:
        raise SystemExit("bench/train_ae.py needs PyTorch (and stable-audio-tools) for the reference side")
    from torchaudio_reference import import_torchaudio
    try:
        torchaudio = import_torchaudio()
    except Exception as e:  # a wheel whose Python code does not run with this PyTorch
        raise SystemExit(f"bench/train_ae.py: torchaudio is installed but does not import: {e!r}")
    if torchaudio is None:
        raise SystemExit("bench/train_ae.py: torchaudio is not installed. stable-audio-tools' EncodecDiscriminator "
                         "computes its spectrograms with torchaudio.transforms.Spectrogram, and the reference must be "
                         "the original code: install torchaudio (pip install --no-deps torchaudio; its native "
                         "extension is not needed)")
    if importlib.util.find_spec("ema_pytorch") is None:
        raise SystemExit("bench/train_ae.py: ema-pytorch is not installed (pip install ema-pytorch==0.2.3); "
                         "stable-audio-tools' wrapper keeps its EMA with it")
    from audiograd.cli.sat_import import ReferenceUnavailable, load_reference
    try:
        ref = load_reference()
    except ReferenceUnavailable as e:
        raise SystemExit(f"bench/train_ae.py: stable-audio-tools reference unavailable: {e}")
    try:
        from training.sat_training_reference import reference, run_step
        sat = reference()
    except BaseException as e:  # pytest.skip's exception derives from BaseException
        if type(e).__name__ == "Skipped":
            raise SystemExit(f"bench/train_ae.py: reference unavailable: {e}")
        raise
    return torch, ref, sat, run_step


def build_sat(torch, ref, sat, cfg, loss, init=None):
    """stable-audio-tools' wrapper as its factory builds it (EMA on a separate copy of the
    autoencoder), on the CPU, float32; with ``init`` its autoencoder and discriminator load it."""
    torch.manual_seed(0)

    def autoencoder():
        enc = ref.OobleckEncoder(**cfg["encoder"]["config"])
        dec = ref.OobleckDecoder(**cfg["decoder"]["config"])
        return sat.AudioAutoencoder(enc, dec, latent_dim=cfg["latent_dim"],
                                    downsampling_ratio=cfg["downsampling_ratio"], sample_rate=SAMPLE_RATE,
                                    io_channels=cfg["io_channels"], bottleneck=ref.VAEBottleneck())
    model = autoencoder()
    if init is not None:
        model.load_state_dict({k: torch.from_numpy(v) for k, v in init["autoencoder"].items()})
    ema_copy = autoencoder()  # weight norm cannot be deep-copied: the factory builds a second model
    ema_copy.load_state_dict(model.state_dict())
    wrapper = sat.AutoencoderTrainingWrapper(model, sample_rate=SAMPLE_RATE, loss_config=copy.deepcopy(loss),
                                             optimizer_configs=copy.deepcopy(SAO_OPTIMIZERS), lr=LR, use_ema=USE_EMA,
                                             ema_copy=ema_copy)
    if init is not None:
        wrapper.discriminator.load_state_dict({k: torch.from_numpy(v) for k, v in init["discriminator"].items()})
    return wrapper


def initial_state(torch, ref, sat, cfg, loss):
    """The starting weights of every side: stable-audio-tools' default initialization, seed 0."""
    w = build_sat(torch, ref, sat, cfg, loss)
    state = {part: {k: v.detach().cpu().numpy().copy() for k, v in getattr(w, part).state_dict().items()}
             for part in ("autoencoder", "discriminator")}
    n_ae = sum(p.numel() for p in w.autoencoder.parameters())
    n_disc = sum(p.numel() for p in w.discriminator.parameters())
    del w
    gc.collect()
    return state, n_ae, n_disc


def audio_batches(batch, samples, count=2, seed=0):
    """``count`` batches (batch, 2, samples) of float32 audio: a few sines per channel plus noise."""
    import numpy as np
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / SAMPLE_RATE
    out = []
    for _ in range(count):
        f = rng.uniform(50, 8000, size=(batch, 2, 5, 1))
        a = rng.uniform(0.05, 0.2, size=(batch, 2, 5, 1))
        ph = rng.uniform(0, 2 * np.pi, size=(batch, 2, 5, 1))
        x = (a * np.sin(2 * np.pi * f * t + ph)).sum(2) + 0.01 * rng.standard_normal((batch, 2, samples))
        out.append(x.astype(np.float32))
    return out


# ---- the sides -------------------------------------------------------------------------------

class OursSide:
    """audiograd's wrapper; step ``k`` trains on batch ``k % len(batches)``."""

    def __init__(self, ag, cfg, loss, init, batches, device):
        from audiograd.models.oobleck import OobleckVAE
        from audiograd.training.autoencoder import AutoencoderTrainingWrapper
        self.ag, self.device = ag, device
        ae = OobleckVAE(copy.deepcopy(cfg))
        ae.load_state_dict(init["autoencoder"])
        if device != "cpu":
            ae.to(device)
        self.wrapper = AutoencoderTrainingWrapper(ae, sample_rate=SAMPLE_RATE, loss_config=copy.deepcopy(loss),
                                                  optimizer_configs=copy.deepcopy(SAO_OPTIMIZERS), lr=LR,
                                                  use_ema=USE_EMA)
        self.wrapper.discriminator.load_state_dict(init["discriminator"])
        self.reals = [ag.tensor(b, device=None if device == "cpu" else device) for b in batches]

    def step(self, noise=None):
        w = self.wrapper
        reals = self.reals[w.global_step % len(self.reals)]
        if noise is not None:
            noise = self.ag.tensor(noise, device=None if self.device == "cpu" else self.device)
        return w.training_step(reals, noise=noise)

    def pair(self, noises=(None, None)):
        assert not self.wrapper.is_discriminator_step(), "a pair starts with a generator step"
        return [self.step(n) for n in noises]


class SatSide:
    """stable-audio-tools' wrapper; its ``training_step`` as ``run_step`` drives it, the logged
    losses captured from ``log_dict``."""

    def __init__(self, torch, ref, sat, run_step, cfg, loss, init, batches, device, compile_modules=False):
        self.torch, self.run_step = torch, run_step
        self.wrapper = w = build_sat(torch, ref, sat, cfg, loss, init)
        if device != "cpu":
            w.to(device)
        if compile_modules:
            # in place, so state-dict keys, the optimizers' parameters and the EMA stay as they are
            w.autoencoder.encoder.compile()
            w.autoencoder.decoder.compile()
            w.discriminator.discriminators.compile()
        self.logged = {}
        w.log_dict = lambda values, *a, **k: self.logged.update(values)
        self.reals = [torch.from_numpy(b).to(device) for b in batches]

    def step(self, noise=None):
        w = self.wrapper
        reals = self.reals[w.harness_step % len(self.reals)]
        self.logged.clear()
        if noise is not None:
            self.run_step(w, reals, self.torch.from_numpy(noise).to(reals.device))
        else:  # run_step without replacing the VAE's noise (the first step, with noise, configured it)
            assert w.harness_optimizers is not None, "the first step must be given the noise"
            w.training_step((reals, None), w.harness_step)
            w.harness_step += 1
        return {k[len("train/"):]: float(v) for k, v in self.logged.items()
                if k.startswith("train/") and not k.endswith("_lr") and not k.endswith("_std")}

    def pair(self, noises=(None, None)):
        assert self.wrapper.harness_step % 2 == 0, "a pair starts with a generator step"
        return [self.step(n) for n in noises]


def compare_losses(ours, theirs, rtol):
    """(max relative difference, lines) over the loss terms both steps of the pair logged."""
    worst, lines = 0.0, []
    for i, (a, b) in enumerate(zip(ours, theirs)):
        kind = "generator" if i == 0 else "discriminator"
        keys = [k for k in b if k in a]
        if not keys:
            raise SystemExit(f"no common loss names in the {kind} step: ours {sorted(a)}, reference {sorted(b)}")
        parts = []
        for k in keys:
            d = abs(a[k] - b[k]) / max(abs(b[k]), 1e-12)
            worst = max(worst, d)
            parts.append(f"{k} {a[k]:.6g} vs {b[k]:.6g}" + (" MISMATCH" if d > rtol else ""))
        lines.append(f"{kind} step: " + ", ".join(parts))
    return worst, lines


# ---- timing ----------------------------------------------------------------------------------

def warm_up(name, side, noises, pairs, sync):
    """The check pair (given noise) and ``pairs - 1`` more; returns (its losses, first pair seconds)."""
    sync()
    t0 = time.perf_counter()
    losses = side.pair(noises)
    sync()
    first = time.perf_counter() - t0
    log(f"{name}: first pair {fmt_time(first)} (with noise given); losses {losses}")
    for _ in range(pairs - 1):
        side.pair()
    sync()
    return losses, first


def time_pairs(sides, repeat, sync, pause=0.05, after_pair=None):
    """Median seconds per pair of each side, timed in interleaved rounds, synchronized."""
    times = {k: [] for k in sides}
    for _ in range(repeat):
        for k, side in sides.items():
            time.sleep(pause)
            sync()
            t0 = time.perf_counter()
            side.pair()
            sync()
            times[k].append(time.perf_counter() - t0)
            if after_pair is not None:
                after_pair(k)
    for k, v in times.items():
        log(f"{k}: pairs {', '.join(fmt_time(t) for t in v)}")
    return {k: statistics.median(v) for k, v in times.items()}


# ---- the cases -------------------------------------------------------------------------------

def run_cpu(args, ag, torch, ref, sat, run_step, rows, notes, extra):
    import numpy as np
    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    batch, samples = args.batch or 2, args.samples or 8192
    cfg = SMALL_CONFIG
    warmup, repeat = (2, 3) if args.quick else (3, 7)
    loss = loss_config(args.disc_filters or CPU_DISC_FILTERS)
    init, n_ae, n_disc = initial_state(torch, ref, sat, cfg, loss)
    batches = audio_batches(batch, samples)
    frames = samples // cfg["downsampling_ratio"]
    rng = np.random.default_rng(1)
    noises = [rng.standard_normal((batch, cfg["latent_dim"], frames)).astype(np.float32) for _ in range(2)]
    sync = lambda: None
    load_before = os.getloadavg()

    ours = OursSide(ag, cfg, loss, init, batches, "cpu")
    theirs = SatSide(torch, ref, sat, run_step, cfg, loss, init, batches, "cpu")
    loss_ours, first_ours = warm_up("ours", ours, noises, warmup, sync)
    loss_sat, first_sat = warm_up("SAT eager", theirs, noises, warmup, sync)
    worst, lines = compare_losses(loss_ours, loss_sat, LOSS_RTOL["fp32"])
    t = time_pairs({"ours": ours, "sat": theirs}, repeat, sync)
    ok = worst <= LOSS_RTOL["fp32"]
    load_after = os.getloadavg()
    filters = loss["discriminator"]["config"]["filters"]
    rows.append(row(f"cpu fp32, small Oobleck, disc filters {filters}, batch {batch} x {samples}: ours vs SAT eager",
                    t["ours"], t["sat"], None,
                    note=f"first-pair losses max rel diff {worst:.1e} ({'ok' if ok else 'MISMATCH'}, rtol "
                         f"{LOSS_RTOL['fp32']:g}); ours' first pair {fmt_time(first_ours)}"))
    notes.append(f"small Oobleck: channels 32, c_mults [1, 2, 4], strides [2, 4, 8], latent 32; "
                 f"{n_ae:,} autoencoder + {n_disc:,} discriminator parameters; {cores} cores, "
                 f"audiograd {ag.config.num_threads} threads, torch {torch.get_num_threads()} threads; "
                 f"discriminator filters {filters} (SAO: 64), its 5 STFT scales as SAO's")
    blas = {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "GOMP_SPINCOUNT") if k in os.environ}
    notes.append(f"load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after the run"
                 + (f"; environment {blas}" if blas else "") + " (other processes on the cores skew both sides)")
    notes.append(f"warm-up {warmup} pairs (the first with the same VAE noise on both sides), then {repeat} "
                 f"interleaved rounds; SAT's first pair {fmt_time(first_sat)}")
    notes += [f"first pair, fp32: {ln}" for ln in lines]
    extra.update({"device": "cpu", "batch": batch, "samples": samples, "autoencoder_params": n_ae,
                  "discriminator_params": n_disc, "disc_filters": filters, "load_avg": [load_before[0], load_after[0]],
                  "ms_per_pair": {k: 1e3 * v for k, v in t.items()},
                  "first_pair_s": {"ours": first_ours, "sat": first_sat}, "loss_max_rel_diff": {"fp32": worst},
                  "losses": {"fp32": {"ours": loss_ours, "sat": loss_sat}}})
    return ok


def set_precision(ag, torch, mode):
    torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
    torch.backends.cudnn.allow_tf32 = mode == "tf32"
    ag.config.cuda_matmul_precision = mode


class CudaMemory:
    """Synchronization and peak memory of both libraries on the GPU: PyTorch's caching allocator
    (peak reserved bytes) and CuPy's default pool, where audiograd keeps its buffers (its bytes
    held, sampled after each pair: the pool keeps what it has grown to until emptied)."""

    def __init__(self, torch, cp):
        self.torch, self.cp, self.pool = torch, cp, cp.get_default_memory_pool()
        self.ours_peak = 0

    def sync(self) -> None:
        self.cp.cuda.Device().synchronize()
        self.torch.cuda.synchronize()

    def release(self) -> None:
        gc.collect()
        self.pool.free_all_blocks()
        self.torch.cuda.empty_cache()

    def reset(self) -> None:
        self.release()
        self.torch.cuda.reset_peak_memory_stats()
        self.ours_peak = self.pool.total_bytes()

    def note(self, _=None) -> None:
        self.ours_peak = max(self.ours_peak, self.pool.total_bytes())

    def peak(self, kind: str):
        """(bytes, how they were read)."""
        if kind == "ours":
            return self.ours_peak, "CuPy pool total_bytes"
        t = self.torch.cuda
        return t.max_memory_reserved(), f"max reserved (max allocated {t.max_memory_allocated() / 2**30:.2f} GiB)"


def run_side_alone(name, make, kind, mem, noises, warmup, repeat):
    """Build one side alone on the device, check pair, warm up, time; its peak memory."""
    mem.reset()
    t0 = time.perf_counter()
    side = make()
    log(f"{name}: built in {fmt_time(time.perf_counter() - t0)}")
    losses, first = warm_up(name, side, noises, warmup, mem.sync)
    mem.note()
    t = time_pairs({name: side}, repeat, mem.sync, pause=0.0, after_pair=mem.note)[name]
    peak, peak_note = mem.peak(kind)
    del side
    mem.release()
    return {"s": t, "first_s": first, "losses": losses, "peak_bytes": peak, "peak_note": peak_note}


def run_cuda(args, ag, torch, ref, sat, run_step, rows, notes, extra):
    import numpy as np
    from audiograd.models.oobleck import SAO_CONFIG
    if not torch.cuda.is_available():
        raise SystemExit("bench/train_ae.py --device cuda: PyTorch sees no CUDA GPU (a CUDA build of torch and an "
                         f"NVIDIA GPU are needed; torch {torch.__version__})")
    try:
        import cupy as cp
        ag.tensor(np.zeros(1, np.float32), device="cuda").numpy()
    except Exception as e:
        raise SystemExit(f"bench/train_ae.py --device cuda: audiograd's CUDA device is not available: {e}")
    ok = run_sides_alone(args, ag, torch, ref, sat, run_step, rows, notes, extra, device="cuda",
                         cfg=copy.deepcopy(SAO_CONFIG), cfg_name="SAO autoencoder", batch=args.batch or 4,
                         samples=args.samples or 65536, filters=args.disc_filters or 64, mem=CudaMemory(torch, cp))
    notes.append(f"GPU: {torch.cuda.get_device_name()}; PyTorch {torch.__version__}; CuPy {cp.__version__}")
    notes.append("peak memory: torch max_memory_reserved since reset_peak_memory_stats before the side was built; "
                 "ours CuPy's default pool total_bytes (after free_all_blocks before building), largest after any "
                 "pair; both include weights, optimizer state and EMA (library workspaces outside the pools, "
                 "e.g. cuFFT/cuBLAS, are not counted)")
    extra["device"] = torch.cuda.get_device_name()
    return ok


def run_sides_alone(args, ag, torch, ref, sat, run_step, rows, notes, extra, device, cfg, cfg_name, batch, samples,
                    filters, mem):
    """The GPU case: ours, SAT eager and SAT compiled, each alone on ``device``, in fp32 and tf32."""
    import numpy as np
    warmup, repeat = (2, 3) if args.quick else (3, 10)
    loss = loss_config(filters)
    init, n_ae, n_disc = initial_state(torch, ref, sat, cfg, loss)
    batches = audio_batches(batch, samples)
    frames = samples // cfg["downsampling_ratio"]
    rng = np.random.default_rng(1)
    noises = [rng.standard_normal((batch, cfg["latent_dim"], frames)).astype(np.float32) for _ in range(2)]
    makers = {
        "ours": ("ours", lambda: OursSide(ag, cfg, loss, init, batches, device)),
        "SAT eager": ("torch", lambda: SatSide(torch, ref, sat, run_step, cfg, loss, init, batches, device)),
    }
    if not args.no_compile:
        makers["SAT torch.compile"] = ("torch", lambda: SatSide(torch, ref, sat, run_step, cfg, loss, init, batches,
                                                                device, compile_modules=True))
    gib = lambda b: f"{b / 2**30:.2f} GiB"
    ok = True
    extra.update({"batch": batch, "samples": samples, "disc_filters": filters, "autoencoder_params": n_ae,
                  "discriminator_params": n_disc, "results": {}})
    for mode in ("fp32", "tf32"):
        set_precision(ag, torch, mode)
        res = {}
        for name, (kind, make) in makers.items():
            log(f"--- {mode}: {name}")
            try:
                res[name] = run_side_alone(name, make, kind, mem, noises, warmup, repeat)
            except Exception as e:  # reported in the table; a failed compile must not hide the other sides
                traceback.print_exc()
                res[name] = {"failed": f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:300]}
                mem.release()
            if name == "SAT torch.compile":
                torch._dynamo.reset()
        extra["results"][mode] = res
        o = res["ours"]
        for name in [n for n in makers if n != "ours"]:
            r = res[name]
            case = f"{mode}: {cfg_name}, disc filters {filters}, batch {batch} x {samples}, ours vs {name}"
            if "failed" in o or "failed" in r:
                rows.append(row(case, o.get("s"), r.get("s"), None,
                                note="; ".join(f"{k} failed: {v['failed']}" for k, v in (("ours", o), (name, r))
                                               if "failed" in v)))
                ok = ok and "failed" not in o and not (name == "SAT eager" and "failed" in r)
                continue
            worst, lines = compare_losses(o["losses"], r["losses"], LOSS_RTOL[mode])
            good = worst <= LOSS_RTOL[mode]
            ok = ok and good
            r["loss_max_rel_diff"] = worst
            rows.append(row(case, o["s"], r["s"], None,
                            note=f"peak mem ours {gib(o['peak_bytes'])}, {name} {gib(r['peak_bytes'])}; first-pair "
                                 f"losses max rel diff {worst:.1e} ({'ok' if good else 'MISMATCH'}, rtol "
                                 f"{LOSS_RTOL[mode]:g}); first pair ours {fmt_time(o['first_s'])}, {name} "
                                 f"{fmt_time(r['first_s'])}"))
            notes += [f"{mode}, first pair, ours vs {name}: {ln}" for ln in lines]
    set_precision(ag, torch, "fp32")
    notes.append(f"{cfg_name}: {n_ae:,} autoencoder + {n_disc:,} discriminator parameters; discriminator filters "
                 f"{filters} (SAO: 64)")
    notes.append(f"warm-up {warmup} pairs per side (the first with the same VAE noise on both sides), then the "
                 f"median of {repeat} pairs; sides run one after another, each alone on the device")
    return ok


def main():
    args = parse()
    torch, ref, sat, run_step = load_sat()
    import audiograd as ag
    rows, notes, extra = [], [], {}
    notes.append("training recipe: stable-audio-tools' stable_audio_2_0_vae.json (losses, AdamW, EMA; ExponentialLR for its InverseLR); "
                 "a pair = one generator step + one discriminator step; ratio = SAT / ours")
    if args.device == "cpu":
        ok = run_cpu(args, ag, torch, ref, sat, run_step, rows, notes, extra)
        title = "Autoencoder training step pair (gen + disc), CPU, float32: audiograd vs stable-audio-tools"
    else:
        ok = run_cuda(args, ag, torch, ref, sat, run_step, rows, notes, extra)
        title = "Autoencoder training step pair (gen + disc), CUDA: audiograd vs stable-audio-tools"
    report(title, rows, args, {"notes": notes, **extra})
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
