"""Run every benchmark and print one markdown report (for the README).

    python bench/run_all.py [--quick] [--only snake,matmul]

Each benchmark runs in its own process (``python bench/NAME.py --json``); a benchmark that
fails (crash or a result that disagrees with numpy) stops the run with its error output.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from common import table_lines

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["compile_time", "snake", "matmul", "conv", "startup", "oobleck", "train", "threads", "load_weights"]


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = [f"Python {platform.python_version()}"]
    for mod in ("numpy", "torch"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            pass
    return f"{cpu}, {os.cpu_count()} cores; " + ", ".join(versions)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
    ap.add_argument("--only", default="", help="comma-separated subset of: " + ", ".join(BENCHMARKS))
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n] or BENCHMARKS
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(sorted(unknown))}")

    out = ["# audiograd benchmarks", "",
           f"Machine: {machine_line()}.", "",
           "Times are medians after warm-up; ratios are reference time / audiograd time "
           "(above 1 means audiograd is faster). PyTorch runs fp32 with `torch.set_num_threads(2)`.", ""]
    for name in names:
        cmd = [sys.executable, str(HERE / f"{name}.py"), "--json"] + (["--quick"] if args.quick else [])
        print(f"running {name} ...", file=sys.stderr, flush=True)
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            sys.stderr.write(p.stdout + p.stderr)
            raise SystemExit(f"benchmark {name} failed (rc={p.returncode})")
        res = json.loads(p.stdout)
        out += [f"## {res['benchmark']}", "", f"`python bench/{name}.py`", ""]
        # a benchmark with other columns than the common table brings its own markdown lines
        out += res.get("markdown") or table_lines(res["rows"], markdown=True)
        if res.get("notes"):
            out.append("")
            out += [f"- {n}" for n in res["notes"]]
        out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
