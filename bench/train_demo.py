"""The README's training demonstration: ``audiograd train autoencoder`` trains the small Oobleck of
``audiograd/examples/data/small_vae_config.json`` from scratch on the bundled piano renders for a
fixed number of steps, and reports the demo reconstruction's MR-STFT distance (auraloss's default
resolutions, the posterior mean decoded) at every demo step: the first is the untrained model's.

The run is the command line itself, in a child process, timed to its exit (kernel compilation
included). Its demo folder (WAV and PNG per demo step) is copied to ``--keep`` if given, and
the last PNG to ``--png``.

    python bench/train_demo.py [--device cuda] [--steps N] [--demo-every N] [--batch-size B]
                               [--sample-size S] [--keep DIR] [--png FILE] [--json]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO_ROOT

EXAMPLES = REPO_ROOT / "audiograd" / "examples" / "data"


def _arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    p.add_argument("--precision", default="fp32", choices=["fp32", "tf32"])
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--demo-every", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--sample-size", type=int, default=32768)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", type=Path, help="copy the run's demo folder here")
    p.add_argument("--png", type=Path, help="copy the last demo PNG here")
    p.add_argument("--json", action="store_true")
    return p.parse_args()


def _distances(run: Path) -> list:
    """(step, distance) of every demo, from the run's checkpoint history."""
    from audiograd.models.checkpoint import load_state
    state = load_state(run / "checkpoint.safetensors", allow_nonfinite=True)
    steps, values = state.get("history.demo_step"), state.get("history.demo_mrstft")
    if steps is None or values is None:
        sys.exit(f"{run / 'checkpoint.safetensors'} holds no demo history")
    return [(int(s), float(v)) for s, v in zip(steps, values)]


def main() -> None:
    args = _arguments()
    with tempfile.TemporaryDirectory(prefix="bench-train-demo-") as tmp:
        run = Path(tmp) / "run"
        data = Path(tmp) / "data"
        data.mkdir()
        for clip in sorted(EXAMPLES.glob("*.flac")):
            shutil.copy(clip, data / clip.name)
        cmd = [sys.executable, "-m", "audiograd", "train", "autoencoder",
               "--config", str(EXAMPLES / "small_vae_config.json"), "--data", str(data), "--out", str(run),
               "--device", args.device, "--precision", args.precision, "--batch-size", str(args.batch_size),
               "--sample-size", str(args.sample_size), "--max-steps", str(args.steps),
               "--checkpoint-every", str(args.steps), "--demo-every", str(args.demo_every),
               "--seed", str(args.seed), "-q"]
        start = time.perf_counter()
        result = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
        took = time.perf_counter() - start
        if result.returncode != 0:
            sys.exit(f"training failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
        distances = _distances(run)
        pngs = sorted((run / "demo").glob("recon_*.png"))
        if args.keep:
            shutil.copytree(run / "demo", args.keep, dirs_exist_ok=True)
        if args.png and pngs:
            args.png.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(pngs[-1], args.png)
    first, last = distances[0][1], distances[-1][1]
    report = {"device": args.device, "precision": args.precision, "steps": args.steps,
              "batch_size": args.batch_size, "sample_size": args.sample_size, "wall_s": took,
              "s_per_step": took / args.steps, "distances": distances, "fall": first / last}
    if args.json:
        print(json.dumps(report))
        return
    print(f"{args.steps} steps of batch {args.batch_size} x {args.sample_size} on {args.device} "
          f"({args.precision}) in {took:.1f} s ({took / args.steps:.3f} s per step, compilation included)")
    for step, d in distances:
        print(f"  step {step:6d}: demo MR-STFT distance {d:.4f}")
    print(f"distance fell {first / last:.2f}x")


if __name__ == "__main__":
    main()
