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
from audiograd.devices.cpu import kernels as cpu
from audiograd.devices.errors import CompileError, CompilerNotFoundError

pytestmark = pytest.mark.cpu_only  # the C compiler's disk cache

PROGRAM = textwrap.dedent("""
    import json, sys
    import numpy as np
    import audiograd as ag
    from audiograd.devices.cpu.kernels import stats
    x = ag.tensor(np.arange(24, dtype=np.float32).reshape(4, 6) / 7)
    y = ((x.sin() * 3).exp().sum(1, keepdim=True) - x).tanh().mean(0)
    print(json.dumps({"values": y.numpy().tolist(), "compiled": stats.compiled, "loaded": stats.loaded}))
""")


def run_program(cache_dir: Path, env_extra=None) -> dict:
    env = dict(os.environ, AUDIOGRAD_CACHE_DIR=str(cache_dir), **(env_extra or {}))
    return json.loads(run_checked([sys.executable, "-c", PROGRAM], env).strip().splitlines()[-1])


def run_checked(argv, env) -> str:
    """The child's stdout; a failure shows what the child printed to stderr."""
    out = subprocess.run(argv, env=env, capture_output=True, text=True)
    assert out.returncode == 0, f"exit status {out.returncode}; stderr:\n{out.stderr}"
    return out.stdout


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
    info = run_checked([sys.executable, "-m", "audiograd", "cache", "info"], env)
    n = len(kernel_files(cache, ".so"))
    assert f"kernels: {n}" in info and str(cache) in info
    out = run_checked([sys.executable, "-m", "audiograd", "cache", "clear"], env)
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


# ---- cache clear deletes only what audiograd wrote --------------------------------------------

from audiograd.cli.main import main as cli_main  # noqa: E402
from audiograd.devices.disk_cache import MARKER_NAME, CacheError, DiskCache  # noqa: E402


def snapshot(root: Path) -> dict:
    """Every path under root (symlinks not followed) with its content or link target."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = p.read_bytes()
        else:
            out[rel] = "dir"
    return out


def run_cli(capsys, *argv):
    code = cli_main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


FAKE_KEY = "ab" + "0" * 62


@pytest.mark.parametrize("layout", ["user files", "entry-like names", "nested folders"])
def test_clear_refuses_a_folder_without_the_marker(tmp_path, capsys, monkeypatch, layout):
    home = tmp_path / "home"
    files = {"user files": ["thesis.tex", "photos/cat.jpg"],
             "entry-like names": [f"kernels/ab/{FAKE_KEY}.so", f"kernels/ab/{FAKE_KEY}.json", "kernels/notes"],
             "nested folders": ["a/b/c/d.txt", "kernels/ab/cd/e.c"]}[layout]
    for name in files:
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        (home / name).write_bytes(os.urandom(32))
    before = snapshot(home)
    monkeypatch.setattr(ag.config, "cache_dir", home)
    code, out, err = run_cli(capsys, "cache", "clear")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("audiograd cache: error:")
    assert "not an audiograd kernel cache" in err and str(home) in err and "nothing was deleted" in err
    assert snapshot(home) == before
    with pytest.raises(CacheError, match="not an audiograd kernel cache"):
        DiskCache(home).clear()


def foreign_items(cache: Path, outside: Path):
    """Things a user (or another program) put inside a marked cache: none of them is an entry."""
    shard = next(p for p in (cache / "kernels").iterdir() if p.is_dir())
    key = next(shard.glob("*.so")).stem
    other_shard = "00" if shard.name != "00" else "01"
    (cache / "kernels" / other_shard).mkdir(exist_ok=True)
    outside_dir = outside / "dir"
    outside_dir.mkdir()
    (outside_dir / f"{key}.so").write_bytes(b"outside library")
    return {
        "user file at the root": (cache / "notes.txt", b"keep me"),
        "user file in kernels/": (cache / "kernels" / "README", b"keep me"),
        "user file in a shard": (shard / "mine.so", b"keep me"),
        "entry name in the wrong shard": (cache / "kernels" / other_shard / f"{key}.so", b"keep me"),
        "entry name in a non-shard folder": (cache / "kernels" / "zz" / f"{key}.json", b"keep me"),
        "subfolder in a shard": (shard / f"{key}.so.d" / "x", b"keep me"),
        "symlink named like an entry": (shard / f"{'f' * 64}.so", outside / "target.so"),
        "symlinked shard": (cache / "kernels" / "cd", outside_dir),
    }


FOREIGN_KINDS = ["user file at the root", "user file in kernels/", "user file in a shard",
                 "entry name in the wrong shard", "entry name in a non-shard folder", "subfolder in a shard",
                 "symlink named like an entry", "symlinked shard"]


@pytest.mark.parametrize("kind", FOREIGN_KINDS)
def test_clear_in_a_marked_cache_deletes_only_entries(fresh_config, tmp_path, capsys, kind):
    x = ag.tensor(np.linspace(0, 1, 10, dtype=np.float32))
    (x * 4 - 1).exp().numpy()
    cache = fresh_config.cache_dir
    assert (cache / MARKER_NAME).is_file()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target.so").write_bytes(b"outside file")
    entries = kernel_files(cache, ".so")
    assert len(entries) == 1
    items = foreign_items(cache, outside)
    assert sorted(items) == sorted(FOREIGN_KINDS)
    path, content = items[kind]
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, Path):
        path.symlink_to(content)
    else:
        path.write_bytes(content)
    outside_before = snapshot(outside)
    code, out, _ = run_cli(capsys, "cache", "info")
    assert code == 0 and "kernels: 1\n" in out
    code, out, _ = run_cli(capsys, "cache", "clear")
    assert code == 0 and "removed 1 kernels" in out
    left = [p for p in entries[0].parent.glob(entries[0].stem + ".*") if p not in (path, path.parent)]
    assert not left, "entry files were left behind"
    assert os.path.lexists(path) and (path.is_symlink() or path.read_bytes() == content)
    assert snapshot(outside) == outside_before
    assert (cache / MARKER_NAME).is_file()


@pytest.mark.parametrize("start", ["missing", "empty", "only kernels/", "foreign content"])
def test_marker_is_written_only_into_a_folder_audiograd_may_own(fresh_config, start):
    cache = fresh_config.cache_dir
    if start != "missing":
        cache.mkdir()
    if start == "only kernels/":
        (cache / "kernels").mkdir()
    if start == "foreign content":
        (cache / "diary.txt").write_text("private")
    x = ag.tensor(np.linspace(0, 1, 10, dtype=np.float32))
    np.testing.assert_allclose((x * 4 - 1).exp().numpy(), np.exp(np.linspace(0, 1, 10) * 4 - 1), rtol=1e-6)
    assert (cache / MARKER_NAME).exists() == (start != "foreign content")
    if start == "foreign content":
        assert sorted(p.name for p in cache.iterdir()) == ["diary.txt", "kernels"]
        with pytest.raises(CacheError):
            DiskCache(cache).clear()
        assert len(kernel_files(cache, ".so")) == 1


# ---- an entry is run only if it is the library built for its key ------------------------------

def compile_plain(tmp_path: Path, text: str, out: Path) -> None:
    src = tmp_path / "plain.c"
    src.write_text(text)
    subprocess.run(["gcc", "-shared", "-fPIC", "-fopenmp", str(src), "-o", str(out), "-lm"], check=True)


def rewrite_record(key_path: Path) -> None:
    """Make the record agree with whatever binary now sits in the slot (a careful forger)."""
    meta = key_path.with_suffix(".json")
    record = json.loads(meta.read_text())
    data = key_path.read_bytes()
    import hashlib
    record.update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    meta.write_text(json.dumps(record))


def tamper(kind: str, a: Path, b: Path, tmp_path: Path) -> None:
    """Replace entry b's library (b and a are entries' .so paths)."""
    source_b = b.with_suffix(".c").read_text()
    key_line = source_b.index("__attribute__((used")
    if kind == "swapped entry":
        b.write_bytes(a.read_bytes())
        b.with_suffix(".json").write_bytes(a.with_suffix(".json").read_bytes())
        return
    if kind == "swapped library, forged record":
        b.write_bytes(a.read_bytes())
    elif kind == "library without its key":
        compile_plain(tmp_path, source_b[:key_line], b)
    elif kind == "library without the kernel":
        compile_plain(tmp_path, source_b[key_line:], b)
    elif kind == "truncated library":
        b.write_bytes(b.read_bytes()[:200])
    elif kind == "not a library":
        b.write_bytes(b"\x7fELF" + os.urandom(4000))
    rewrite_record(b)


TAMPERINGS = ["swapped entry", "swapped library, forged record", "library without its key",
              "library without the kernel", "truncated library", "not a library"]


@pytest.mark.parametrize("kind", TAMPERINGS)
def test_wrong_library_in_a_slot_is_rebuilt_not_run(fresh_config, tmp_path, kind):
    x = ag.tensor(np.linspace(0, 1, 40, dtype=np.float32))
    (x * 2 + 1).sin().numpy()
    [a] = kernel_files(fresh_config.cache_dir, ".so")
    (x * 3 - 1).cos().numpy()
    [b] = [p for p in kernel_files(fresh_config.cache_dir, ".so") if p != a]
    # a copy of the cache: its paths were never opened by this process's dynamic loader
    copy = tmp_path / "copy"
    import shutil
    shutil.copytree(fresh_config.cache_dir, copy)
    a, b = copy / a.relative_to(fresh_config.cache_dir), copy / b.relative_to(fresh_config.cache_dir)
    tamper(kind, a, b, tmp_path)
    fresh_config.cache_dir = copy
    cpu.compiler._fns.clear()
    compiled, rejected = cpu.stats.compiled, cpu.stats.rejected
    want = np.cos(np.linspace(0, 1, 40) * 3 - 1)
    np.testing.assert_allclose((x * 3 - 1).cos().numpy(), want, rtol=1e-5, atol=1e-6)
    assert cpu.stats.compiled == compiled + 1
    assert cpu.stats.rejected == rejected + (kind != "swapped entry")
    assert json.loads(b.with_suffix(".json").read_text())["key"] == b.stem
    # the rebuilt entry is now used as is, also by this process (which opened the bad one first)
    cpu.compiler._fns.clear()
    np.testing.assert_allclose((x * 3 - 1).cos().numpy(), want, rtol=1e-5, atol=1e-6)
    assert cpu.stats.compiled == compiled + 1
    assert not list(copy.rglob("*.tmp"))


def test_symlinks_at_entry_names_are_replaced_not_written_through(fresh_config, tmp_path):
    x = ag.tensor(np.linspace(0, 1, 10, dtype=np.float32))
    (x + 5).log().numpy()
    [so] = kernel_files(fresh_config.cache_dir, ".so")
    key = so.stem
    outside = tmp_path / "outside"
    outside.mkdir()
    for suffix in (".so", ".json", ".c", ".lock", ".log"):
        target = outside / f"victim{suffix}"
        target.write_text("precious")
        p = so.with_suffix(suffix)
        p.unlink(missing_ok=True)
        p.symlink_to(target)
    cpu.compiler._fns.clear()
    np.testing.assert_allclose((x + 5).log().numpy(), np.log(np.linspace(0, 1, 10) + 5), rtol=1e-6)
    assert all(t.read_text() == "precious" for t in outside.iterdir())
    assert not so.is_symlink() and json.loads(so.with_suffix(".json").read_text())["key"] == key
