"""SIGINT / SIGTERM stop ``audiograd encode`` cleanly: status 128 + signal, one line, no
temporary file, an existing output untouched; and the signal helper on its own."""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from audiograd.cli.signals import Interrupted, signals_as_exceptions
from oobleck_configs import TINY

SECONDS = 20  # far more work than the test waits for: the signal always lands mid-work


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    d = tmp_path_factory.mktemp("signals")
    (d / "config.json").write_text(json.dumps(TINY))
    audio = 0.2 * np.random.default_rng(0).standard_normal((SECONDS * TINY["sample_rate"], 2))
    sf.write(d / "in.wav", audio.astype(np.float32), TINY["sample_rate"], subtype="FLOAT")
    return d


def _stderr_collector(proc):
    """A thread that gathers the child's stderr (the progress bar ends lines with \\r)."""
    buf = bytearray()

    def pump():
        while True:
            chunk = proc.stderr.read1(4096)
            if not chunk:
                return
            buf.extend(chunk)
    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return buf, thread


@pytest.mark.parametrize("signum, status, name", [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")])
def test_signal_mid_work_exits_cleanly(job, tmp_path, signum, status, name):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "z.npy"
    out.write_bytes(b"previous latents")
    proc = subprocess.Popen([sys.executable, "-m", "audiograd.cli.main", "encode", str(job / "in.wav"), str(out),
                             "--random-weights", "--config", str(job / "config.json"), "--chunk", "32"],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    buf, thread = _stderr_collector(proc)
    deadline = time.monotonic() + 120
    while not re.search(rb" [1-9]\d*/\d+ \[", bytes(buf)):  # some blocks done, far from all
        assert proc.poll() is None, bytes(buf).decode()
        assert time.monotonic() < deadline, "no progress reported"
        time.sleep(0.05)
    proc.send_signal(signum)
    try:
        rc = proc.wait(timeout=30)
    finally:
        proc.kill()
    thread.join(5)
    err = bytes(buf).decode()
    assert rc == status, err
    *bar, last, after = err.split("\n")  # the bar's line is ended first, then one line of its own
    assert last == f"audiograd encode: interrupted by {name}; no output written" and after == "", err
    assert "Traceback" not in err
    assert out.read_bytes() == b"previous latents"
    assert os.listdir(out_dir) == ["z.npy"]  # no temporary or probe file


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signals_become_one_exception_and_handlers_come_back(signum):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    cleaned = []
    with pytest.raises(Interrupted) as info:
        with signals_as_exceptions():
            try:
                os.kill(os.getpid(), signum)
                time.sleep(5)  # interrupted by the exception
            finally:
                os.kill(os.getpid(), signum)  # a second signal during clean-up is ignored
                cleaned.append(True)
    assert info.value.signum == signum and info.value.exit_status == 128 + signum
    assert isinstance(info.value, KeyboardInterrupt)  # never swallowed by `except Exception`
    assert cleaned == [True]
    assert {s: signal.getsignal(s) for s in before} == before


def test_sigterm_stops_the_demo_and_removes_its_folder(tmp_path):
    """Every command, not only the audio ones, unwinds on SIGTERM: the demo's half-made
    output folder is removed and the line names the signal."""
    out = tmp_path / "demo-out"
    proc = subprocess.Popen([sys.executable, "-m", "audiograd.cli.main", "demo", "--steps", "100000",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not out.exists():  # the folder is made before training starts
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the demo never created its folder"
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    err = err.decode()
    assert proc.returncode == 143, err
    assert err.rstrip("\n").rsplit("\n", 1)[-1].endswith("audiograd demo: interrupted by SIGTERM"), err
    assert "Traceback" not in err
    assert not out.exists()
