"""Shared helpers for the benchmark scripts: timing, checking, subprocesses, tables.

Every script prints a table with one row per case: audiograd's time, PyTorch's time (fp32, 2
threads), numpy's time, and the ratios reference / audiograd (so a ratio above 1 means
audiograd is faster). ``--json`` prints the rows as JSON instead.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

TORCH_THREADS = 2


def import_torch():
    """torch with TORCH_THREADS intra-op threads, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(TORCH_THREADS)
    return torch


def median_time(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time in seconds of ``repeat`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def median_times(fns: Dict[str, Callable[[], object]], repeat: int = 5, warmup: int = 1) -> Dict[str, float]:
    """``median_time`` for several functions, each warmed up and timed in its own block, so one
    library's idle worker threads (PyTorch's OpenMP pool spins after every op) do not slow the
    next library's first run. Returns each name's median in seconds."""
    return {k: median_time(fn, repeat=repeat, warmup=warmup) for k, fn in fns.items()}


def interleaved_median_times(fns: Dict[str, Callable[[], object]], repeat: int = 5, warmup: int = 1,
                             pause: float = 0.05) -> Dict[str, float]:
    """Median wall time in seconds of each function, timed in rounds (one call of each per
    round) so that a slow spell of the machine (memory bandwidth here drifts by a third between
    minutes) falls on every library alike. A ``pause`` before each call lets the previous
    library's spinning worker threads go to sleep."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: Dict[str, list] = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            time.sleep(pause)
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def check_close(name: str, got, expected, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """Fail loudly (SystemExit) if ``got`` differs from the numpy reference ``expected``."""
    import numpy as np
    got = np.asarray(got)
    expected = np.asarray(expected)
    if got.shape != expected.shape:
        raise SystemExit(f"MISMATCH in {name}: shape {got.shape} != expected {expected.shape}")
    if not np.allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True):
        diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
        idx = np.unravel_index(int(np.nanargmax(diff)), diff.shape)
        raise SystemExit(f"MISMATCH in {name}: max abs diff {diff[idx]:.3g} at {idx} "
                         f"(got {got[idx]!r}, expected {expected[idx]!r}; rtol={rtol}, atol={atol})")


def subprocess_env(**extra: str) -> Dict[str, str]:
    """The environment for a child Python that imports audiograd from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


def run_python(code: str, env: Optional[Dict[str, str]] = None, timeout: float = 600) -> dict:
    """Run ``python -c code`` in a fresh process; it must print one JSON object as its last line.

    Returns that object with ``wall_s`` (the whole process's wall time, start-up included) added.
    """
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", code], env=env or subprocess_env(), capture_output=True,
                       text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"child process failed (rc={p.returncode}):\n--- code ---\n{code}\n"
                         f"--- stdout ---\n{p.stdout}\n--- stderr ---\n{p.stderr}")
    lines = [ln for ln in p.stdout.strip().splitlines() if ln.strip()]
    try:
        out = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise SystemExit(f"child process printed no JSON result:\n{p.stdout}\n{p.stderr}")
    out["wall_s"] = wall
    return out


# ---- tables -------------------------------------------------------------------------------

def fmt_time(s: Optional[float]) -> str:
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return "-"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.0f} us"


def fmt_ratio(ref: Optional[float], ours: Optional[float]) -> str:
    if ref is None or ours is None or ours <= 0:
        return "-"
    return f"{ref / ours:.2f}x"


def row(case: str, ours: Optional[float], torch_s: Optional[float], numpy_s: Optional[float],
        note: str = "") -> dict:
    """One table row; times in seconds (None where a backend was not measured)."""
    return {"case": case, "audiograd_s": ours, "torch_s": torch_s, "numpy_s": numpy_s,
            "torch_over_audiograd": (torch_s / ours) if torch_s and ours else None,
            "numpy_over_audiograd": (numpy_s / ours) if numpy_s and ours else None,
            "note": note}


HEADER = ["case", "audiograd", "torch (2 thr)", "numpy", "torch/ours", "numpy/ours"]


def table_lines(rows: Sequence[dict], markdown: bool = False) -> List[str]:
    has_note = any(r.get("note") for r in rows)
    header = HEADER + (["note"] if has_note else [])
    cells = [[r["case"], fmt_time(r["audiograd_s"]), fmt_time(r["torch_s"]), fmt_time(r["numpy_s"]),
              fmt_ratio(r["torch_s"], r["audiograd_s"]), fmt_ratio(r["numpy_s"], r["audiograd_s"])]
             + ([r.get("note", "")] if has_note else []) for r in rows]
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
        out += ["| " + " | ".join(c) + " |" for c in cells]
        return out
    widths = [max(len(str(x)) for x in col) for col in zip(header, *cells)]
    line = lambda cs: "  ".join(str(c).ljust(w) for c, w in zip(cs, widths)).rstrip()
    return [line(header), line(["-" * w for w in widths])] + [line(c) for c in cells]


def parse_args(description: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    ap.add_argument("--markdown", action="store_true", help="print the table as markdown")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
    return ap.parse_args()


def report(title: str, rows: Sequence[dict], args: argparse.Namespace, extra: Optional[dict] = None) -> None:
    if args.json:
        print(json.dumps({"benchmark": title, "rows": list(rows), **(extra or {})}, indent=2))
        return
    print(f"## {title}" if args.markdown else title)
    if args.markdown:
        print()
    for ln in table_lines(rows, markdown=args.markdown):
        print(ln)
    for k, v in (extra or {}).items():
        if k != "notes":
            continue
        print()
        for n in v:
            print(f"- {n}" if args.markdown else f"  * {n}")
