"""Pre-encoding a folder of audio: ``audiograd pre-encode`` (Ray) beside stable-audio-tools'
``pre_encode.py`` (PyTorch Lightning) on the same files and weights, and Ray's overhead against
a plain loop over the same stages in one process.

Data: ``--files`` stereo 44.1 kHz WAV files of ``--seconds`` each (tones and noise, peaks below
1), padded/cropped to the largest multiple of 2048 samples not above their length, so both
sides encode the same samples (no resampling on either side). Weights: Stable Audio Open 1.0's
autoencoder shapes with stable-audio-tools' own modules randomized at realistic scales
(``audiograd.cli.parity.randomize_reference``), saved once as a VAE-only safetensors file that
both load, with a ``vae_config.json`` as Stable Audio Open ships it.

Sides, each a fresh process timed from start to exit (model load, start-up and writing
included), after one untimed warm-up run of ours on one file (kernels compiled and cached):

* ours (Ray): ``python -m audiograd pre-encode`` with a local Ray, one encoder worker (CPU actor,
  or one GPU actor with ``--device cuda``);
* ours (loop): ``audiograd.preencode.pre_encode(..., use_ray=False)``: the same stages in one process;
* stable-audio-tools: its ``pre_encode.py`` (pass its path: ``--sat-pre-encode PATH``; it is in
  the repository, not the PyPI package) run as a script with the same batch size and sample
  size, ``--num-workers`` data-loader workers. Three things are changed for it, by this script:
  files are decoded with soundfile (torchaudio's loader needs torchcodec, not installed); the
  diffusion sampler module its autoencoder module imports (and encoding never calls) is an
  empty stand-in, sparing k-diffusion's training dependencies; on a machine without a GPU its
  Trainer gets ``accelerator="cpu"`` (its main() names "gpu").
  It samples the latents from the posterior (its VAE's ``encode``); ours write the mean, the
  same network work.

Every side also encodes the first file alone: its start-up (Ray, the actor, the model; Lightning's
trainer) plus one file. The rest of a run, divided by the other files, is what each further file
costs, the rate a long run approaches; Ray's overhead is given in all and per file.

The table gives hours of audio encoded per minute of wall time and the ratios; the outputs are
checked: ours (Ray) and ours (loop) bit for bit, and every metadata field but ``load_time`` and
``path`` against stable-audio-tools' for the same file.

    python bench/pre_encode.py --sat-pre-encode PATH [--device cuda] [--files N] [--seconds S]
                               [--batch-size B] [--chunk LATENTS] [--repeat R] [--markdown]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO_ROOT

SAMPLE_RATE = 44100


def _arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sat-pre-encode", type=Path, help="stable-audio-tools' pre_encode.py")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--files", type=int, default=None, help="audio files (default: 12 on CPU, 96 on CUDA)")
    p.add_argument("--seconds", type=float, default=None, help="length of each (default: 10 on CPU, 30 on CUDA)")
    p.add_argument("--batch-size", type=int, default=None, help="items per encoder call (default: 1 CPU, 8 CUDA)")
    p.add_argument("--chunk", type=int, default=None, help="our encoder window in latents (default: 128 CPU, 1024 CUDA)")
    p.add_argument("--num-workers", type=int, default=None, help="stable-audio-tools' data-loader workers")
    p.add_argument("--precision", default="fp32", choices=["fp32", "tf32"],
                   help="our GPU convolutions (stable-audio-tools runs at PyTorch's defaults: cuDNN in TF32)")
    p.add_argument("--repeat", type=int, default=1, help="timed runs of each side (median)")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--json", action="store_true")
    p.add_argument("--sat-child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = p.parse_args()
    cuda = args.device == "cuda"
    args.files = args.files or (96 if cuda else 12)
    args.seconds = args.seconds or (30.0 if cuda else 10.0)
    args.batch_size = args.batch_size or (8 if cuda else 1)
    args.chunk = args.chunk or (1024 if cuda else 128)
    args.num_workers = args.num_workers or min(8 if cuda else 4, os.cpu_count() or 1)
    return args


def _write_inputs(work: Path, files: int, seconds: float) -> dict:
    """The audio files, the weights both sides load, and the configs."""
    import numpy as np
    import soundfile as sf
    from audiograd.cli import parity
    from audiograd.models.oobleck import SAO_CONFIG
    data = work / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    for i in range(files):
        tone = sum(0.1 * np.sin(2 * np.pi * rng.uniform(50, 4000) * t + rng.uniform(0, 6)) for _ in range(4))
        audio = tone[:, None] + 0.05 * rng.standard_normal((n, 2))
        sf.write(data / f"track{i:04d}.wav", (0.9 * audio / np.abs(audio).max()).astype(np.float32), SAMPLE_RATE,
                 subtype="FLOAT")
    import torch
    from safetensors.torch import save_file
    state = {}
    for part in ("encoder", "decoder"):
        module = parity.build_reference(SAO_CONFIG, part, seed=0)
        state.update({f"{part}.{k}": v.detach().float().contiguous() for k, v in module.state_dict().items()})
    save_file(state, str(work / "vae.safetensors"))
    vae_config = {"model_type": "autoencoder", "sample_size": 65536, "sample_rate": SAMPLE_RATE, "audio_channels": 2,
                  "model": SAO_CONFIG}
    (work / "vae_config.json").write_text(json.dumps(vae_config))
    (work / "dataset.json").write_text(json.dumps({"dataset_type": "audio_dir", "random_crop": False,
                                                   "drop_last": False, "datasets": [{"id": "bench", "path": str(data)}]}))
    del torch
    return {"data": data, "weights": work / "vae.safetensors", "config": work / "vae_config.json",
            "dataset": work / "dataset.json", "sample_size": n // 2048 * 2048}


def _timed(cmd, log: Path, env=None) -> float:
    start = time.perf_counter()
    with open(log, "w") as f:
        result = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
    took = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd[:4]))}... failed (exit {result.returncode}); see {log}:\n"
                 + log.read_text()[-3000:])
    return took


def _ours_ray(inputs, out, args, files=None):
    cmd = [sys.executable, "-m", "audiograd", "pre-encode", str(files or inputs["data"]), str(out),
           "--checkpoint", str(inputs["weights"]), "--config", str(inputs["config"]), "--sample-size",
           str(inputs["sample_size"]), "--batch-size", str(args.batch_size), "--chunk", str(args.chunk),
           "--workers", "1", "-q"]
    return cmd + (["--gpus-per-worker", "1", "--precision", args.precision] if args.device == "cuda" else [])


def _ours_loop(inputs, out, args):
    call = (f"from audiograd.preencode import pre_encode; "
            f"s = pre_encode({str(inputs['data'])!r}, {str(out)!r}, checkpoint={str(inputs['weights'])!r}, "
            f"config={str(inputs['config'])!r}, sample_size={inputs['sample_size']}, batch_size={args.batch_size}, "
            f"chunk={args.chunk}, gpus_per_worker={1 if args.device == 'cuda' else 0}, progress=False, "
            f"precision={args.precision if args.device == 'cuda' else 'fp32'!r}, "
            f"use_ray=False); assert s.failed == 0, s.failures")
    return [sys.executable, "-c", call]


def _sat(inputs, out, args):
    return [sys.executable, str(Path(__file__).resolve()), "--sat-child", str(args.sat_pre_encode),
            "--model-config", str(inputs["config"]), "--ckpt-path", str(inputs["weights"]),
            "--dataset-config", str(inputs["dataset"]), "--output-path", str(out), "--batch-size",
            str(args.batch_size), "--sample-size", str(inputs["sample_size"]), "--num-workers", str(args.num_workers)]


def _run_sat_child(argv) -> None:
    """Run stable-audio-tools' pre_encode.py as a script, with the two changes the docstring names."""
    import importlib.machinery
    import runpy
    import types
    try:
        import torchaudio  # noqa: F401
    except ImportError:   # its dataset module imports it; the paths run here do not use it
        stand_in = types.ModuleType("torchaudio")
        stand_in.transforms = types.ModuleType("torchaudio.transforms")
        stand_in.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
        stand_in.transforms.Resample = stand_in.transforms.Loudness = None
        sys.modules["torchaudio"], sys.modules["torchaudio.transforms"] = stand_in, stand_in.transforms
    # its autoencoder module imports the diffusion sampler (k-diffusion and its training stack),
    # which encoding never calls
    sampling = types.ModuleType("stable_audio_tools.inference.sampling")
    def placeholder(name):
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (), {})
    sampling.__getattr__ = placeholder
    sampling.__spec__ = importlib.machinery.ModuleSpec(sampling.__name__, None)
    sys.modules[sampling.__name__] = sampling
    import numpy as np
    import soundfile as sf
    import torch
    from stable_audio_tools.data import dataset

    def load_file(self, filename):
        audio, sr = sf.read(filename, dtype="float32", always_2d=True)
        assert sr == self.sr
        return torch.from_numpy(np.ascontiguousarray(audio.T))
    dataset.SampleDataset.load_file = load_file
    if not torch.cuda.is_available():
        import pytorch_lightning as pl
        trainer_init = pl.Trainer.__init__

        def cpu_trainer(self, *a, **kw):
            trainer_init(self, *a, **dict(kw, accelerator="cpu"))
        pl.Trainer.__init__ = cpu_trainer
    script, *rest = argv
    sys.argv = [script, *rest]
    runpy.run_path(script, run_name="__main__")


def _check(ours: Path, loop: Path, sat: Path) -> int:
    """Ours (Ray) == ours (loop) bit for bit; metadata fields equal stable-audio-tools'; returns items."""
    import numpy as np
    items = sorted(p for p in ours.rglob("*.npy"))
    for p in items:
        if not np.array_equal(np.load(p), np.load(loop / p.relative_to(ours))):
            sys.exit(f"ours (Ray) and ours (loop) differ for {p.name}")
    theirs = {}
    for p in sat.rglob("*.json"):
        if p.name != "details.json":
            meta = json.loads(p.read_text())
            theirs[meta["relpath"]] = (meta, np.load(p.with_suffix(".npy")))
    if len(theirs) != len(items):
        sys.exit(f"stable-audio-tools wrote {len(theirs)} items, ours {len(items)}")
    for p in items:
        meta = json.loads(p.with_suffix(".json").read_text())
        ref, z = theirs[meta["relpath"]]
        for key in set(ref) - {"load_time", "path"}:
            if meta[key] != ref[key]:
                sys.exit(f"{meta['relpath']}: field {key} differs from stable-audio-tools'")
        if z.shape != np.load(p).shape:
            sys.exit(f"{meta['relpath']}: latents {np.load(p).shape} vs stable-audio-tools' {z.shape}")
    return len(items)


def main() -> None:
    args = _arguments()
    if args.sat_child:
        _run_sat_child(args.sat_child)
        return
    if args.sat_pre_encode is None or not args.sat_pre_encode.is_file():
        sys.exit("give --sat-pre-encode PATH: stable-audio-tools' pre_encode.py (in its repository, not on PyPI)")
    args.sat_pre_encode = args.sat_pre_encode.resolve()  # the sides run from the repository's root
    with tempfile.TemporaryDirectory(prefix="bench-pre-encode-") as tmp:
        work = Path(tmp)
        env = dict(os.environ, AUDIOGRAD_CACHE_DIR=os.environ.get("AUDIOGRAD_CACHE_DIR", str(work / "kernels")))
        inputs = _write_inputs(work, args.files, args.seconds)
        warm = work / "warm"
        warm.mkdir()
        os.link(inputs["data"] / "track0000.wav", warm / "track0000.wav")
        _timed(_ours_ray(inputs, work / "warm-out", args, files=warm), work / "warm.log", env)
        sides = {"ours (Ray)": _ours_ray, "ours (loop)": _ours_loop, "stable-audio-tools": _sat}
        times = {name: [] for name in sides}
        one_file = {name: [] for name in sides}
        single = dict(inputs, data=warm, dataset=work / "dataset-one.json")
        single["dataset"].write_text(inputs["dataset"].read_text().replace(json.dumps(str(inputs["data"])),
                                                                           json.dumps(str(warm))))
        for r in range(args.repeat):
            for name, command in sides.items():
                out = work / f"out-{name.split()[-1].strip('()')}-{r}"
                times[name].append(_timed(command(inputs, out, args), work / f"{out.name}.log", env))
            for name in one_file:
                out = work / f"one-{name.split()[-1].strip('()')}-{r}"
                one_file[name].append(_timed(sides[name](single, out, args), work / f"{out.name}.log", env))
        items = _check(work / "out-Ray-0", work / "out-loop-0", work / "out-stable-audio-tools-0")
    hours = items * inputs["sample_size"] / SAMPLE_RATE / 3600
    med = {name: statistics.median(t) for name, t in times.items()}
    # start-up (Ray, actor, model load) is what one file costs; the rest is the cost per file
    start = {name: statistics.median(t) for name, t in one_file.items()}
    per_file = {name: (med[name] - start[name]) / (items - 1) for name in one_file}
    rows = [{"side": name, "wall_s": med[name], "hours_per_min": hours / (med[name] / 60),
             "speed_vs_sat": med["stable-audio-tools"] / med[name], "start_s": start[name],
             "per_file_s": per_file[name], "per_file_vs_sat": per_file["stable-audio-tools"] / per_file[name]}
            for name in sides]
    overhead = med["ours (Ray)"] / med["ours (loop)"] - 1
    steady_overhead = per_file["ours (Ray)"] / per_file["ours (loop)"] - 1
    setup = {"device": args.device, "precision": args.precision, "files": items, "seconds_each": inputs["sample_size"] / SAMPLE_RATE,
             "batch_size": args.batch_size, "chunk": args.chunk, "num_workers": args.num_workers,
             "repeat": args.repeat, "ray_overhead": overhead, "ray_overhead_per_file": steady_overhead}
    if args.json:
        print(json.dumps({"setup": setup, "rows": rows}, indent=2))
    print(f"pre-encoding {items} files x {setup['seconds_each']:.2f} s ({hours:.3f} h), {args.device}, batch "
          f"{args.batch_size}, SAO 1.0 autoencoder (random weights); ours in {args.precision}, stable-audio-tools "
          f"at PyTorch's defaults (cuDNN convolutions in TF32 on a GPU)")
    bar = "|" if args.markdown else ""
    print(f"{bar} side | wall | h of audio / min | vs stable-audio-tools | start-up + 1 file | each further "
          f"file | per file vs stable-audio-tools {bar}")
    if args.markdown:
        print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"{bar} {r['side']} | {r['wall_s']:.1f} s | {r['hours_per_min']:.3f} | {r['speed_vs_sat']:.2f}x | "
              f"{r['start_s']:.1f} s | {r['per_file_s']:.3f} s | {r['per_file_vs_sat']:.2f}x {bar}")
    print(f"Ray's overhead against the plain loop: {100 * overhead:+.1f}% in all, {100 * steady_overhead:+.1f}% "
          f"per file after start-up")


if __name__ == "__main__":
    main()
