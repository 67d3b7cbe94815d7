"""Fuzz the weight readers: mutated safetensors, PyTorch zip, legacy PyTorch and .npy files, loaded in child processes.

Every case must either load (plain arrays) or raise the format's error with a message starting
with the file's name; any other exception, a message without the name, or a dead child (a
crash) fails the test. CI runs a bounded number per format with a fixed seed; ``--fuzz-cases N``
runs N per format (the long run).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from checkpoint_fuzz import FORMATS, write_seed_files

CI_CASES = 300
SEED = 20240601
WORKER = Path(__file__).with_name("checkpoint_fuzz.py")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def seed_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("fuzz_seeds")
    write_seed_files(directory)
    return directory


def _run_worker(seed_dir, fmt, start, count, work_dir, timeout):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(WORKER), str(seed_dir), fmt, str(SEED), str(start), str(count),
                           str(work_dir)], capture_output=True, text=True, env=env, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def fuzz(seed_dir, fmt, cases, work_dir, timeout=600):
    """Run ``cases`` mutations of ``fmt``, restarting the child after any crash; returns counts and findings."""
    counts = {"load": 0, "error": 0, "bad": 0, "crash": 0}
    findings, start = [], 0
    while start < cases:
        rc, out, err = _run_worker(seed_dir, fmt, start, cases - start, work_dir, timeout)
        last_started, done = None, start
        for line in out.splitlines():
            if line.startswith("start "):
                last_started = int(line.split()[1])
            elif line.startswith("{"):
                result = json.loads(line)
                counts[result["outcome"]] += 1
                done = result["case"] + 1
                if result["outcome"] == "bad":
                    findings.append(f"{fmt} case {result['case']}: {result['detail']}")
        if rc == 0 and done == cases:
            break
        crashed = last_started if last_started is not None and last_started >= done else done
        counts["crash"] += 1
        findings.append(f"{fmt} case {crashed}: child died (status {rc}): {err.strip()[-300:]}")
        start = crashed + 1
    return counts, findings


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_mutated_files_load_or_fail_cleanly(seed_dir, tmp_path, fmt, request):
    cases = request.config.getoption("--fuzz-cases") or CI_CASES
    counts, findings = fuzz(seed_dir, fmt, cases, tmp_path)
    print(f"\nfuzz {fmt}: {cases} cases: {counts['load']} loaded, {counts['error']} clean errors, "
          f"{counts['bad']} bad errors, {counts['crash']} crashes")
    assert not findings, "\n".join(findings[:20])
    assert counts["load"] + counts["error"] == cases
    assert counts["error"] > cases // 10  # the mutations do reach the readers' checks
    assert not list(tmp_path.iterdir())  # every case file was removed by the child


def test_a_crashing_child_is_reported_as_a_crash(seed_dir, tmp_path, monkeypatch):
    """The harness must see a segfault: a worker that kills itself counts as a crash, not a pass."""
    script = tmp_path / "dying_worker.py"
    script.write_text("import os, signal\nprint('start 0', flush=True)\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    monkeypatch.setattr(sys.modules[__name__], "WORKER", script)
    counts, findings = fuzz(seed_dir, "npy", 1, tmp_path)
    assert counts["crash"] == 1 and "child died" in findings[0]
