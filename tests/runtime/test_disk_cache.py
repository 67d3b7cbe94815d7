"""The kernel cache: shared by processes, atomic, self-repairing, keyed by everything that matters."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import audiograd as ag
from audiograd.runtime import cpu
from audiograd.runtime.compiler import CompileError, CompilerNotFoundError

pytestmark = pytest.mark.cpu_only  # the C compiler's disk cache

PROGRAM = textwrap.dedent("""
    import json, sys
    import numpy as np
    import audiograd as ag
    from audiograd.runtime.cpu import stats
    x = ag.tensor(np.arange(24, dtype=np.float32).reshape(4, 6) / 7)
    y = ((x.sin() * 3).exp().sum(1, keepdim=True) - x).tanh().mean(0)
    print(json.dumps({"values": y.numpy().tolist(), "compiled": stats.compiled, "loaded": stats.loaded}))
""")


def run_program(cache_dir: Path, env_extra=None) -> dict:
    env = dict(os.environ, AUDIOGRAD_CACHE_DIR=str(cache_dir), **(env_extra or {}))
    out = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def expected():
    x = np.arange(24, dtype=np.float64).reshape(4, 6) / 7
    return np.tanh(np.exp(np.sin(x) * 3).sum(1, keepdims=True) - x).mean(0)


def kernel_files(cache_dir: Path, suffix: str):
    return sorted((cache_dir / "kernels").rglob(f"*{suffix}"))


def test_second_process_compiles_nothing(tmp_path):
    log = tmp_path / "cc.log"
    wrapper = tmp_path / "cc-wrapper"
    wrapper.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\nexec gcc \"$@\"\n")
    wrapper.chmod(0o755)
    cold = run_program(tmp_path / "cache", {"CC": str(wrapper)})
    calls = log.read_text().count("\n")
    assert cold["compiled"] > 0 and calls == cold["compiled"]
    warm = run_program(tmp_path / "cache", {"CC": str(wrapper)})
    assert warm["compiled"] == 0 and warm["loaded"] == cold["compiled"]
    assert log.read_text().count("\n") == calls, "the warm process invoked the compiler"
    np.testing.assert_allclose(warm["values"], expected(), rtol=1e-5)
    np.testing.assert_array_equal(warm["values"], cold["values"])


def test_two_processes_at_once_share_the_cache(tmp_path):
    cache = tmp_path / "cache"
    env = dict(os.environ, AUDIOGRAD_CACHE_DIR=str(cache))
    procs = [subprocess.Popen([sys.executable, "-c", PROGRAM], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    for r in results:
        np.testing.assert_allclose(r["values"], expected(), rtol=1e-5)
    # every kernel was built once (the per-entry lock makes the other process wait and load it)
    built = results[0]["compiled"] + results[1]["compiled"]
    n = len(kernel_files(cache, ".so"))
    assert n == results[0]["compiled"] + results[0]["loaded"]
    assert built == n
    assert not list(cache.rglob("*.tmp")), "temporary files were left behind"


def test_truncated_entry_is_rebuilt(tmp_path):
    cache = tmp_path / "cache"
    first = run_program(cache)
    sos = kernel_files(cache, ".so")
    victim = sos[0]
    victim.write_bytes(victim.read_bytes()[:100])
    second = run_program(cache)
    assert second["compiled"] == 1 and second["loaded"] == first["compiled"] - 1
    np.testing.assert_allclose(second["values"], expected(), rtol=1e-5)
    record = json.loads(victim.with_suffix(".json").read_text())
    assert record["size"] == victim.stat().st_size > 100


def test_corrupt_record_is_rebuilt(tmp_path):
    cache = tmp_path / "cache"
    run_program(cache)
    meta = kernel_files(cache, ".json")[0]
    meta.write_text("{not json")
    second = run_program(cache)
    assert second["compiled"] == 1
    np.testing.assert_allclose(second["values"], expected(), rtol=1e-5)


@pytest.fixture
def fresh_config(tmp_path):
    saved = (ag.config.cache_dir, ag.config.cflags, ag.config.cc)
    ag.config.cache_dir = tmp_path / "cache"
    cpu.compiler._fns.clear()
    yield ag.config
    ag.config.cache_dir, ag.config.cflags, ag.config.cc = saved
    cpu.compiler._fns.clear()


def test_changed_compiler_flag_rebuilds(fresh_config):
    x = ag.tensor(np.linspace(0, 1, 50, dtype=np.float32))
    before = cpu.stats.compiled
    (x * 2 + 1).sin().numpy()
    assert cpu.stats.compiled == before + 1
    cpu.compiler._fns.clear()
    (x * 2 + 1).sin().numpy()
    assert cpu.stats.compiled == before + 1  # same flags: found on disk
    fresh_config.cflags = fresh_config.cflags + ("-fno-unroll-loops",)
    cpu.compiler._fns.clear()
    out = (x * 2 + 1).sin().numpy()
    assert cpu.stats.compiled == before + 2  # new flags: new entry
    np.testing.assert_allclose(out, np.sin(np.linspace(0, 1, 50) * 2 + 1), rtol=1e-6)
    assert len(kernel_files(fresh_config.cache_dir, ".so")) == 2


def test_compile_failure_shows_message_and_source(fresh_config):
    fresh_config.cflags = fresh_config.cflags + ("-fthis-flag-does-not-exist",)
    x = ag.tensor(np.ones(8, dtype=np.float32))
    with pytest.raises(CompileError) as err:
        (x * 3).numpy()
    msg = str(err.value)
    assert "this-flag-does-not-exist" in msg
    assert err.value.source_path.exists() and str(err.value.source_path) in msg
    assert "b0[" in err.value.source_path.read_text()


def test_missing_compiler_is_a_clear_error(fresh_config):
    fresh_config.cc = "no-such-compiler-anywhere"
    x = ag.tensor(np.ones(8, dtype=np.float32))
    with pytest.raises(CompilerNotFoundError, match="no-such-compiler-anywhere"):
        (x * 5).numpy()


def test_cache_cli_info_and_clear(tmp_path):
    cache = tmp_path / "cache"
    run_program(cache)
    env = dict(os.environ, AUDIOGRAD_CACHE_DIR=str(cache))
    info = subprocess.run([sys.executable, "-m", "audiograd", "cache", "info"], env=env,
                          capture_output=True, text=True, check=True).stdout
    n = len(kernel_files(cache, ".so"))
    assert f"kernels: {n}" in info and str(cache) in info
    out = subprocess.run([sys.executable, "-m", "audiograd", "cache", "clear"], env=env,
                         capture_output=True, text=True, check=True).stdout
    assert f"removed {n} kernels" in out
    assert not kernel_files(cache, ".so")


def test_cache_dir_follows_xdg(tmp_path):
    from audiograd.config import default_cache_dir
    env = {k: v for k, v in os.environ.items() if k != "AUDIOGRAD_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    code = "from audiograd.config import config; print(config.cache_dir)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(tmp_path / "xdg" / "audiograd")
    assert default_cache_dir() == Path(os.environ["AUDIOGRAD_CACHE_DIR"])
