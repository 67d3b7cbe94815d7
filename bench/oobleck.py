"""Stable Audio Open's Oobleck VAE on the CPU: audiograd vs PyTorch eager vs ONNX Runtime, float32.

Cases (batch 1, inference): the decoder at 22 latents (45,056 samples, ~1 s) and 108 latents
(221,184 samples, ~5 s); the encoder on 1 s (44,100 samples) and 5 s (220,500 samples) of stereo
44.1 kHz audio. Every backend gets identical weights: stable-audio-tools' own OobleckEncoder /
OobleckDecoder (SAO 1.0 config) with seeded random weights of realistic scale
(``audiograd.cli.parity.randomize_reference``: weight_v ~ N(0, 1), weight_g set so activations
stay O(1), SnakeBeta log-scale alpha/beta ~ N(0, 0.3)), rounded to float32 and saved once as
.npz; audiograd loads that state dict unchanged (same keys).

* audiograd: ``audiograd.models.oobleck`` under ``audiograd.no_grad()``;
* PyTorch: the stable-audio-tools modules (imported through ``audiograd.cli.sat_import``'s shim),
  ``torch.no_grad()``, eval mode;
* ONNX Runtime: the same modules exported by ``torch.onnx.export`` (TorchScript exporter, opset
  17, dynamic length axis) with their weight norm left in place: the exporter's constant folding
  folds it into plain weights.

Each (backend, case) runs in its own fresh process that builds only what that backend needs
(no torch in the audiograd and ORT processes), loads the weights from the shared file, runs a
warm-up and the timed runs, and reports its peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``).
All use 2 threads (torch.set_num_threads(2); ORT intra_op 2, inter_op 1; AUDIOGRAD_THREADS=2).
Outputs are checked against stable-audio-tools run in float64 on the same float32-rounded
weights: audiograd and PyTorch must be within max |error| < 1e-4 x RMS(reference).

Also measured: audiograd's cold compile of the whole SAO decoder (fresh process, empty
AUDIOGRAD_CACHE_DIR: first decode at 22 latents minus a warm decode) and its warm start (a
second fresh process on the same cache: process start to the end of the first decode, and the
first decode alone).

    python bench/oobleck.py [--json] [--markdown] [--quick]
"""
from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from common import REPO_ROOT, fmt_time, parse_args, run_python, subprocess_env

SEED = 0
THREADS = 2
# (name, part, input key, length in latents or samples)
CASES = [
    ("decoder, 22 latents (~1 s)", "decoder", "dec22", 22),
    ("decoder, 108 latents (~5 s)", "decoder", "dec108", 108),
    ("encoder, 1 s stereo", "encoder", "enc1s", 44100),
    ("encoder, 5 s stereo", "encoder", "enc5s", 220500),
]
BACKENDS = ["audiograd", "torch", "ort"]
REL_TOL = 1e-4       # max |out - ref| / RMS(ref) for audiograd and PyTorch float32
ORT_REL_TOL = 1e-3   # ONNX Runtime (its own kernels, e.g. Sin); only a sanity check

# ---- child processes ----------------------------------------------------------------------------
# Every child reads its parameters from the OOBLECK_BENCH environment variable (JSON) and
# prints one JSON line last.

COMMON_CHILD = r"""
import json, os, resource, time
t_script = time.perf_counter()

def since_exec():
    # seconds since this process was exec'd (Linux /proc, 10 ms resolution), else None
    try:
        with open("/proc/self/stat") as f:
            start = int(f.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
        with open("/proc/uptime") as f:
            return float(f.read().split()[0]) - start
    except (OSError, ValueError, IndexError):
        return None

def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

P = json.loads(os.environ["OOBLECK_BENCH"])
"""

# builds the stable-audio-tools reference (float64), saves float32 weights, inputs, float64
# reference outputs and the ONNX exports
PREP_CHILD = COMMON_CHILD + r"""
import math, warnings
import numpy as np
import torch
torch.set_num_threads(P["threads"])
from audiograd.cli import parity
from audiograd.cli.sat_import import load_reference
d = P["dir"]
out = {"version": load_reference().version, "parts": {}}
inputs = {}
for key, part, n in P["inputs"]:
    x = parity.make_input(P["config"], part, n, seed=P["seed"] + n)
    inputs[key] = x.astype(np.float32)
np.savez(os.path.join(d, "inputs.npz"), **inputs)
for part in P["parts"]:
    m = parity.build_reference(P["config"], part, seed=P["seed"])   # randomized, float64
    state = {k: v.astype(np.float32) for k, v in parity.reference_state(m).items()}
    np.savez(os.path.join(d, part + ".npz"), **state)
    nparams = sum(int(v.size) for v in state.values())
    # float64 reference on the float32-rounded weights: the comparison sees compute error only
    m = parity.build_reference(P["config"], part, state=state)
    rms = {}
    for key, p2, n in P["inputs"]:
        if p2 != part:
            continue
        with torch.no_grad():
            ref = m(torch.from_numpy(inputs[key].astype(np.float64))).numpy()
        np.save(os.path.join(d, "ref_" + key + ".npy"), ref)
        rms[key] = float(np.sqrt(np.mean(ref * ref)))
    del m
    # ONNX: the float32 module, weight norm as is, one export with a dynamic length axis
    m32 = parity.build_reference(P["config"], part, state=state).float()
    example = torch.from_numpy(inputs[P["export_example"][part]])
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m32, (example,), os.path.join(d, part + ".onnx"), dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"], do_constant_folding=True,
                          dynamic_axes={"x": {2: "length"}, "y": {2: "out_length"}})
    export_s = time.perf_counter() - t0
    import onnx
    ops = sorted({n.op_type for n in onnx.load(os.path.join(d, part + ".onnx")).graph.node})
    out["parts"][part] = {"params": nparams, "rms": rms, "export_s": export_s, "onnx_ops": ops}
    del m32
print(json.dumps(out))
"""

# one backend on one case: build, load weights, warm up, time, save the output
BACKEND_CHILD = COMMON_CHILD + r"""
import numpy as np
backend, part = P["backend"], P["part"]
if backend == "audiograd":
    import audiograd as ag
    from audiograd.models.oobleck import OobleckDecoder, OobleckEncoder
    t_import = time.perf_counter()
    x = np.load(P["inputs"])[P["key"]]
    state = dict(np.load(P["weights"]))
    m = (OobleckEncoder if part == "encoder" else OobleckDecoder)(**P["kwargs"]).to(ag.float32).eval()
    m.load_state_dict(state)
    del state
    xt = ag.tensor(x)
    def run():
        with ag.no_grad():
            return m(xt).numpy()
elif backend == "torch":
    import importlib.util, warnings
    import torch
    torch.set_num_threads(P["threads"])
    # the shim by file path: importing the audiograd package is not needed here
    spec = importlib.util.spec_from_file_location("_sat_import", P["shim"])
    shim = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shim)
    ref = shim.load_reference()
    t_import = time.perf_counter()
    x = np.load(P["inputs"])[P["key"]]
    state = dict(np.load(P["weights"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = (ref.OobleckEncoder if part == "encoder" else ref.OobleckDecoder)(**P["kwargs"])
    m.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    m.eval()
    del state
    xt = torch.from_numpy(x)
    def run():
        with torch.no_grad():
            return m(xt).numpy()
elif backend == "ort":
    import onnxruntime as ort
    t_import = time.perf_counter()
    x = np.load(P["inputs"])[P["key"]]
    so = ort.SessionOptions()
    so.intra_op_num_threads = P["threads"]
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(P["onnx"], so, providers=["CPUExecutionProvider"])
    def run():
        return sess.run(None, {"x": x})[0]
else:
    raise SystemExit("unknown backend " + backend)
t_loaded = time.perf_counter()
rss_loaded = rss_kb()
t0 = time.perf_counter()
y = run()
first_s = time.perf_counter() - t0
first_end_from_exec = since_exec()
times = []
for _ in range(P["repeat"]):
    t0 = time.perf_counter()
    y = run()
    times.append(time.perf_counter() - t0)
np.save(P["out"], np.asarray(y))
print(json.dumps({
    "import_s": t_import - t_script, "load_s": t_loaded - t_import, "first_s": first_s,
    "first_end_from_script_s": t_loaded - t_script + first_s, "first_end_from_exec_s": first_end_from_exec,
    "times": times, "median_s": sorted(times)[len(times) // 2] if len(times) % 2 else
    (sorted(times)[len(times) // 2 - 1] + sorted(times)[len(times) // 2]) / 2,
    "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "rss_loaded_kb": rss_loaded,
    "loadavg": os.getloadavg()[0], "shape": list(np.shape(y))}))
"""

# audiograd's decoder at 22 latents from a cold or a warm kernel cache
STARTUP_CHILD = COMMON_CHILD + r"""
import numpy as np
import audiograd as ag
from audiograd.models.oobleck import OobleckDecoder
from audiograd.devices.cpu.kernels import stats
t_import = time.perf_counter()
assert str(ag.config.cache_dir) == os.environ["AUDIOGRAD_CACHE_DIR"], ag.config.cache_dir
x = np.load(P["inputs"])[P["key"]]
state = dict(np.load(P["weights"]))
m = OobleckDecoder(**P["kwargs"]).to(ag.float32).eval()
m.load_state_dict(state)
del state
xt = ag.tensor(x)
def run():
    with ag.no_grad():
        return m(xt).numpy()
t_loaded = time.perf_counter()
compiled0, loaded0 = stats.compiled, stats.loaded
t0 = time.perf_counter()
y = run()
first_s = time.perf_counter() - t0
first_end_from_exec = since_exec()
first_end_from_script = time.perf_counter() - t_script
compiled, loaded = stats.compiled - compiled0, stats.loaded - loaded0
warm = []
for _ in range(P["warm_runs"]):
    t0 = time.perf_counter()
    run()
    warm.append(time.perf_counter() - t0)
ref = np.load(P["ref"])
err = float(np.max(np.abs(y - ref)) / np.sqrt(np.mean(ref * ref)))
print(json.dumps({"import_s": t_import - t_script, "load_s": t_loaded - t_import, "first_s": first_s,
                  "first_end_from_script_s": first_end_from_script, "first_end_from_exec_s": first_end_from_exec,
                  "warm_s": sorted(warm)[len(warm) // 2], "compiled": compiled, "loaded": loaded,
                  "rel_err": err, "loadavg": os.getloadavg()[0]}))
"""


# ---- helpers -----------------------------------------------------------------------------------

def child_env(params: dict, **extra: str) -> dict:
    return subprocess_env(OOBLECK_BENCH=json.dumps(params), AUDIOGRAD_THREADS=str(THREADS),
                          OMP_NUM_THREADS=str(THREADS), **extra)


def part_kwargs(config: dict, part: str) -> dict:
    kw = dict(config[part]["config"])
    for k in ("c_mults", "strides"):
        kw[k] = list(kw[k])
    return kw


def rel_err(got, ref) -> float:
    import numpy as np
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        raise SystemExit(f"MISMATCH: output shape {got.shape} != reference {ref.shape}")
    if not np.all(np.isfinite(got)):
        return math.inf
    return float(np.max(np.abs(got - ref)) / np.sqrt(np.mean(ref * ref)))


def fmt_mb(kb) -> str:
    return "-" if kb is None else f"{kb / 1024:.0f} MB"


def fmt_ratio(ref, ours) -> str:
    return "-" if not ref or not ours else f"{ref / ours:.2f}x"


SPEED_HEADER = ["case", "audiograd", "torch eager", "ONNX Runtime", "torch/ours", "ort/ours",
                "peak RSS ours", "peak RSS torch", "peak RSS ORT", "err ours", "err torch", "err ORT"]


def speed_cells(r: dict) -> list:
    return [r["case"], fmt_time(r["audiograd_s"]), fmt_time(r["torch_s"]), fmt_time(r["ort_s"]),
            fmt_ratio(r["torch_s"], r["audiograd_s"]), fmt_ratio(r["ort_s"], r["audiograd_s"]),
            fmt_mb(r["audiograd_maxrss_kb"]), fmt_mb(r["torch_maxrss_kb"]), fmt_mb(r["ort_maxrss_kb"]),
            f"{r['audiograd_err']:.1e}", f"{r['torch_err']:.1e}", f"{r['ort_err']:.1e}"]


STARTUP_HEADER = ["case", "time", "note"]


def startup_cells(r: dict) -> list:
    return [r["case"], fmt_time(r["seconds"]), r.get("note", "")]


def table(header, cells, markdown: bool) -> list:
    if markdown:
        return (["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
                + ["| " + " | ".join(c) + " |" for c in cells])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *cells)]
    line = lambda cs: "  ".join(str(c).ljust(w) for c, w in zip(cs, widths)).rstrip()
    return [line(header), line(["-" * w for w in widths])] + [line(c) for c in cells]


def tables(rows, startup_rows, markdown: bool) -> list:
    out = table(SPEED_HEADER, [speed_cells(r) for r in rows], markdown)
    out += ["", "audiograd start-up, SAO decoder at 22 latents (fresh processes):", ""]
    out += table(STARTUP_HEADER, [startup_cells(r) for r in startup_rows], markdown)
    return out


# ---- main ---------------------------------------------------------------------------------------

def main():
    args = parse_args(__doc__.splitlines()[0])
    from audiograd.models.oobleck import SAO_CONFIG  # light: no kernels are compiled here
    repeat = 1 if args.quick else 3
    startup_reps = 1 if args.quick else 2
    load_start = os.getloadavg()
    t_bench = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="audiograd-oobleck-bench-"))
    try:
        # 1. weights, inputs, float64 references and ONNX exports, in one torch process
        prep = run_python(PREP_CHILD, env=child_env({
            "dir": str(tmp), "config": SAO_CONFIG, "seed": SEED, "threads": THREADS,
            "parts": ["decoder", "encoder"], "inputs": [[k, p, n] for _, p, k, n in CASES],
            "export_example": {"decoder": "dec22", "encoder": "enc1s"}}), timeout=3600)
        import numpy as np

        # 2. audiograd cold compile and warm start of the decoder (its own kernel caches)
        startup_params = {"inputs": str(tmp / "inputs.npz"), "key": "dec22", "weights": str(tmp / "decoder.npz"),
                          "kwargs": part_kwargs(SAO_CONFIG, "decoder"), "ref": str(tmp / "ref_dec22.npy"),
                          "warm_runs": 3}
        colds, warms = [], []
        for i in range(startup_reps):
            cache = tmp / f"cache-startup-{i}"
            cache.mkdir()
            env = child_env(startup_params, AUDIOGRAD_CACHE_DIR=str(cache))
            c = run_python(STARTUP_CHILD, env=env, timeout=3600)
            w = run_python(STARTUP_CHILD, env=env, timeout=3600)
            if c["compiled"] < 1:
                raise SystemExit(f"expected a cold compile with an empty cache, compiled={c['compiled']}")
            if w["compiled"] != 0:
                raise SystemExit(f"warm start compiled {w['compiled']} kernel(s); expected 0 (all from the cache)")
            for r in (c, w):
                if not r["rel_err"] < REL_TOL:
                    raise SystemExit(f"MISMATCH: audiograd decoder @22 in the start-up child: max|err|/RMS "
                                     f"{r['rel_err']:.3g} >= {REL_TOL}")
            colds.append(c)
            warms.append(w)

        # 3. each backend on each case in its own process; audiograd shares one kernel cache
        bench_cache = tmp / "cache-bench"
        bench_cache.mkdir()
        shim = REPO_ROOT / "audiograd" / "cli" / "sat_import.py"
        rows, results = [], {}
        for name, part, key, n in CASES:
            ref = np.load(tmp / f"ref_{key}.npy")
            r = {"case": name}
            for backend in BACKENDS:
                out = tmp / f"out_{backend}_{key}.npy"
                params = {"backend": backend, "part": part, "key": key, "threads": THREADS, "repeat": repeat,
                          "inputs": str(tmp / "inputs.npz"), "weights": str(tmp / f"{part}.npz"),
                          "onnx": str(tmp / f"{part}.onnx"), "shim": str(shim),
                          "kwargs": part_kwargs(SAO_CONFIG, part), "out": str(out)}
                res = run_python(BACKEND_CHILD, env=child_env(params, AUDIOGRAD_CACHE_DIR=str(bench_cache)),
                                 timeout=3600)
                got = np.load(out)
                res["rel_err"] = rel_err(got, ref)
                out.unlink()
                results[(backend, key)] = res
                r[f"{backend}_s"] = res["median_s"]
                r[f"{backend}_maxrss_kb"] = res["maxrss_kb"]
                r[f"{backend}_err"] = res["rel_err"]
                r[f"{backend}_first_s"] = res["first_s"]
                r[f"{backend}_load_s"] = res["load_s"]
                r[f"{backend}_rss_loaded_kb"] = res["rss_loaded_kb"]
                r[f"{backend}_loadavg"] = res["loadavg"]
            for backend, tol in (("audiograd", REL_TOL), ("torch", REL_TOL), ("ort", ORT_REL_TOL)):
                if not r[f"{backend}_err"] < tol:
                    raise SystemExit(f"MISMATCH in {name}: {backend} max|err|/RMS = {r[f'{backend}_err']:.3g} "
                                     f">= {tol} (float64 stable-audio-tools reference, RMS "
                                     f"{prep['parts'][part]['rms'][key]:.3g})")
            r["out_shape"] = results[("audiograd", key)]["shape"]
            r["torch_over_audiograd"] = r["torch_s"] / r["audiograd_s"]
            r["ort_over_audiograd"] = r["ort_s"] / r["audiograd_s"]
            rows.append(r)
            del ref
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load_end = os.getloadavg()
    total_s = time.perf_counter() - t_bench

    med = lambda rs, k: statistics.median(x[k] for x in rs)
    d22 = {b: results[(b, "dec22")] for b in BACKENDS}
    cold_first, cold_warm = med(colds, "first_s"), med(colds, "warm_s")
    startup_rows = [
        {"case": "cold: first decode, empty cache", "seconds": cold_first,
         "note": f"{colds[0]['compiled']} kernels compiled; fresh process, empty AUDIOGRAD_CACHE_DIR"},
        {"case": "cold compile (first decode - warm decode)", "seconds": max(cold_first - cold_warm, 0.0),
         "note": f"warm decode in the same process {fmt_time(cold_warm)}"},
        {"case": "warm start: process start -> end of first decode", "seconds": med(warms, "first_end_from_exec_s"),
         "note": f"second fresh process, same cache ({warms[0]['loaded']} kernel loads from the disk cache, 0 compiled); "
                 f"interpreter start, imports {fmt_time(med(warms, 'import_s'))}, weights + model "
                 f"{fmt_time(med(warms, 'load_s'))}, first decode"},
        {"case": "warm start: import -> end of first decode", "seconds": med(warms, "first_end_from_script_s"),
         "note": "from the first line of the script (before `import audiograd`)"},
        {"case": "warm start: first decode alone", "seconds": med(warms, "first_s"),
         "note": f"then warm decodes {fmt_time(med(warms, 'warm_s'))}"},
        {"case": "torch: process start -> end of first decode", "seconds": d22["torch"]["first_end_from_exec_s"],
         "note": f"for comparison (import torch + shim {fmt_time(d22['torch']['import_s'])}, weights + model "
                 f"{fmt_time(d22['torch']['load_s'])}, first decode {fmt_time(d22['torch']['first_s'])})"},
        {"case": "ORT: process start -> end of first decode", "seconds": d22["ort"]["first_end_from_exec_s"],
         "note": f"for comparison (import {fmt_time(d22['ort']['import_s'])}, session creation from the .onnx "
                 f"{fmt_time(d22['ort']['load_s'])}, first decode {fmt_time(d22['ort']['first_s'])})"},
    ]

    pd, pe = prep["parts"]["decoder"], prep["parts"]["encoder"]
    notes = [
        f"stable-audio-tools {prep['version']} OobleckEncoder/OobleckDecoder, SAO 1.0 config "
        f"({pe['params']:,} + {pd['params']:,} parameters), seeded random weights (seed {SEED}): weight_v ~ N(0,1), "
        "weight_g scaled for O(1) activations, SnakeBeta log alpha/beta ~ N(0, 0.3); output RMS "
        + ", ".join(f"{k} {v:.2f}" for part in ("decoder", "encoder") for k, v in prep["parts"][part]["rms"].items()),
        f"float32, batch 1, inference (audiograd.no_grad / torch.no_grad); {THREADS} threads everywhere: "
        f"torch.set_num_threads({THREADS}), ORT intra_op {THREADS} / inter_op 1 (sequential, ORT_ENABLE_ALL), "
        f"AUDIOGRAD_THREADS={THREADS}",
        f"times: median of {repeat} run(s) after 1 warm-up, each backend and case in its own fresh process "
        "(output converted to numpy included); audiograd's warm-up there also compiles any kernel its "
        "shared cache lacks (the cold rows below measure compilation)",
        "ONNX: torch.onnx.export (TorchScript exporter, dynamo=False, opset 17, one export per part with a "
        "dynamic length axis) of the weight-normed modules as is; the exporter's constant folding folds the "
        f"weight norm into plain Conv/ConvTranspose weights (ops: {', '.join(pd['onnx_ops'])}); export took "
        f"{pd['export_s']:.1f} s (decoder), {pe['export_s']:.1f} s (encoder)",
        "peak RSS: ru_maxrss of the backend's process (imports, weight loading and the runs); "
        "after loading, before the first run: "
        + "; ".join(f"{r['case']}: " + ", ".join(f"{b} {fmt_mb(r[f'{b}_rss_loaded_kb'])}" for b in BACKENDS)
                    for r in rows),
        "audiograd and torch load the float32 weights from one shared .npz; ORT loads them from the .onnx "
        "file exported from the same modules",
        f"err = max |out - ref| / RMS(ref) against stable-audio-tools in float64 on the same float32-rounded "
        f"weights; audiograd and torch must be < {REL_TOL:g}, ORT < {ORT_REL_TOL:g}, else the run fails",
        "first (warm-up) run per process: " + "; ".join(
            f"{r['case']}: " + ", ".join(f"{b} {fmt_time(r[f'{b}_first_s'])}" for b in BACKENDS) for r in rows),
        f"load average (1 min) {load_start[0]:.2f} at start, {load_end[0]:.2f} at the end, per child "
        f"{min(r[f'{b}_loadavg'] for r in rows for b in BACKENDS):.2f}-"
        f"{max(r[f'{b}_loadavg'] for r in rows for b in BACKENDS):.2f} on {os.cpu_count()} cores "
        f"(other processes share the machine); whole benchmark {total_s / 60:.1f} min",
    ]
    title = "Oobleck VAE (Stable Audio Open 1.0), CPU, float32, batch 1"
    if args.json:
        print(json.dumps({"benchmark": title, "rows": rows, "startup_rows": startup_rows,
                          "markdown": tables(rows, startup_rows, True), "notes": notes,
                          "startup_children": {"cold": colds, "warm": warms}}, indent=2))
        return
    print(f"## {title}" if args.markdown else title)
    if args.markdown:
        print()
    for ln in tables(rows, startup_rows, args.markdown):
        print(ln)
    print()
    for n in notes:
        print(f"- {n}" if args.markdown else f"  * {n}")


if __name__ == "__main__":
    main()
