"""``audiograd reconstruct`` on one minute of stereo 44.1 kHz audio with the full SAO model.

Slow (minutes on two cores): run with ``pytest --runslow -s tests/cli/test_reconstruct_long.py``.
Random weights stand in for a checkpoint; what is checked is that the command finishes, draws
its progress bar, writes audio of the expected length and keeps peak memory bounded.
"""
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

SECONDS, RATE, RATIO = 60, 44100, 2048
# measured 5.1 GB with the default 128-latent chunks: 0.74 GB of weights plus one chunk's
# activations (it does not grow with the duration; --chunk 64 halves the activations)
PEAK_RSS_LIMIT_MB = 6144

# runs the command in a child and reports the child's own peak RSS (ru_maxrss is in KiB on Linux)
CHILD = ("import resource, sys\n"
         "from audiograd.cli.main import main\n"
         "rc = main(sys.argv[1:])\n"
         "print(f'PEAK_RSS_MB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}', file=sys.stderr)\n"
         "sys.exit(rc)\n")


@pytest.mark.slow
def test_reconstruct_one_minute_sao_bounded_memory(tmp_path):
    t = np.arange(SECONDS * RATE) / RATE
    rng = np.random.default_rng(0)
    audio = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.3 * np.sin(2 * np.pi * 331 * t)], axis=1)
    audio += 0.01 * rng.standard_normal(audio.shape)
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, audio.astype(np.float32), RATE, subtype="PCM_16")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, "reconstruct", str(src), str(dst), "--random-weights"],
                          capture_output=True, text=True, timeout=3600)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-2000:]
    peak = int(proc.stderr.rsplit("PEAK_RSS_MB", 1)[1].split()[0])
    print(f"\nreconstruct {SECONDS} s stereo: {elapsed:.1f} s wall, peak RSS {peak} MB")
    assert "encode: 100%" in proc.stderr and "decode: 100%" in proc.stderr, proc.stderr[-2000:]
    info = sf.info(dst)
    assert (info.samplerate, info.channels) == (RATE, 2)
    assert info.frames == (SECONDS * RATE // RATIO) * RATIO
    assert peak < PEAK_RSS_LIMIT_MB
