"""A missing or failing C compiler, or an unusable kernel cache folder, is one clear line (exit 2)
from every command: no traceback, no output file left behind."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import audiograd as ag
from audiograd.devices.errors import CompileError
from audiograd.cli.main import main
from audiograd.devices.cpu import kernels as cpu
from oobleck_configs import TINY

pytestmark = pytest.mark.cpu_only  # the C compiler and its kernel cache

RATE = 44100


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """A fresh kernel cache and no kernels in memory, so that every command has to compile."""
    monkeypatch.setattr(ag.config, "cache_dir", tmp_path / "cache")
    monkeypatch.setattr(ag.config, "cc", None)
    monkeypatch.delenv("CC", raising=False)
    saved = dict(cpu.compiler._fns)
    cpu.compiler._fns.clear()
    yield tmp_path
    cpu.compiler._fns.clear()
    cpu.compiler._fns.update(saved)


def command_lines(tmp_path):
    """argv of every command that compiles kernels, with small inputs; and the files each may write."""
    config = {"model_type": "diffusion_cond", "sample_rate": RATE,
              "model": {"pretransform": {"type": "autoencoder", "config": TINY}}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    sf.write(tmp_path / "in.wav", np.zeros((800, 2), np.float32), RATE, subtype="FLOAT")
    np.save(tmp_path / "in.npy", np.zeros((TINY["latent_dim"], 4), np.float32))
    model = ["--config", str(tmp_path / "config.json"), "--random-weights", "-q"]
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    return {
        "demo": ["demo", "sine", "--steps", "2"],
        "encode": ["encode", str(tmp_path / "in.wav"), str(out / "latents.npy"), *model],
        "decode": ["decode", str(tmp_path / "in.npy"), str(out / "audio.wav"), *model],
        "reconstruct": ["reconstruct", str(tmp_path / "in.wav"), str(out / "audio.wav"), *model],
    }


def assert_one_line_error(code, err, command, *needles):
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"audiograd {command}: error: "), err
    for needle in needles:
        assert needle in lines[0], err


def write_script(path, body):
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


BAD_COMPILERS = {
    "missing": lambda d: str(d / "no-such-compiler"),
    "exits with failure and no message": lambda d: shutil.which("false"),
    "prints garbage and fails": lambda d: write_script(
        d / "garbage-cc", "printf 'x\\001\\377 \\n@@@ error: not really a compiler\\n' >&2\nexit 3\n"),
    "crashes": lambda d: write_script(d / "crash-cc", "echo 'about to crash' >&2\nkill -SEGV $$\n"),
    "succeeds without writing a library": lambda d: shutil.which("true"),
}


@pytest.mark.parametrize("command", ["demo", "encode", "decode", "reconstruct"])
@pytest.mark.parametrize("compiler", list(BAD_COMPILERS))
def test_bad_compiler_is_one_line_from_every_command(isolated, capsys, monkeypatch, command, compiler):
    argv = command_lines(isolated)[command]
    monkeypatch.setenv("CC", BAD_COMPILERS[compiler](isolated))
    code = main(argv)
    out, err = capsys.readouterr()
    assert_one_line_error(code, err, command, "CC", "gcc")
    assert not list((isolated / "out").iterdir()), "an output file was left behind"
    if compiler != "missing":
        # the full compiler output is kept where the message says
        log = err.split("full output in ")[1].split(")")[0]
        assert "command: " in open(log).read()


def test_compile_error_from_python_keeps_the_full_output(isolated, monkeypatch):
    monkeypatch.setenv("CC", BAD_COMPILERS["prints garbage and fails"](isolated))
    with pytest.raises(CompileError) as err:
        (ag.tensor(np.ones(3, np.float32)) * 7).numpy()
    assert "not really a compiler" in err.value.summary
    assert "not really a compiler" in str(err.value) and "command: " in str(err.value)


def make_file(d):
    (d / "a-file").write_text("not a folder")
    return d / "a-file"


def make_under_file(d):
    return make_file(d) / "cache"


def make_dangling(d):
    (d / "link").symlink_to(d / "gone")
    return d / "link"


BAD_CACHE_DIRS = {
    "a regular file": (make_file, "is a regular file"),
    "a path under a file": (make_under_file, "which is a regular file"),
    "a dangling symlink": (make_dangling, "symlink to a missing target"),
}


@pytest.mark.parametrize("command", ["demo", "encode", "cache info", "cache clear"])
@pytest.mark.parametrize("kind", list(BAD_CACHE_DIRS))
def test_unusable_cache_dir_is_one_line_from_every_command(isolated, capsys, monkeypatch, kind, command):
    make, says = BAD_CACHE_DIRS[kind]
    cache = make(isolated)
    monkeypatch.setattr(ag.config, "cache_dir", cache)
    commands = command_lines(isolated)
    argv = command.split() if command.startswith("cache") else commands[command]
    code = main(argv)
    out, err = capsys.readouterr()
    assert_one_line_error(code, err, command.split()[0], str(cache), says, "AUDIOGRAD_CACHE_DIR")
    assert not list((isolated / "out").iterdir())
    assert not os.path.isdir(cache)


def run_with_unwritable_dir(argv, folder, env):
    """Run the CLI with ``folder`` unwritable for real: read-only permissions for a normal user;
    for root (whom permissions do not stop), a read-only mount in a private mount namespace."""
    cmd = [sys.executable, "-m", "audiograd", *argv]
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            return subprocess.run(cmd, env=env, capture_output=True, text=True)
        finally:
            folder.chmod(0o755)
    if not shutil.which("unshare"):
        pytest.skip("running as root without unshare: no way to make a folder unwritable for root")
    script = f'mount -t tmpfs -o ro tmpfs "{folder}" && exec "$@"'
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", *cmd], env=env, capture_output=True, text=True)
    if "mount" in proc.stderr and "audiograd" not in proc.stderr:
        pytest.skip(f"running as root where read-only mounts are not allowed: {proc.stderr.strip()}")
    return proc


@pytest.mark.parametrize("command", ["demo", "cache clear"])
def test_unwritable_cache_dir_is_one_line(tmp_path, command):
    folder = tmp_path / "readonly"
    folder.mkdir()
    env = dict(os.environ, AUDIOGRAD_CACHE_DIR=str(folder))
    argv = command.split() if command.startswith("cache") else ["demo", "sine", "--steps", "2"]
    proc = run_with_unwritable_dir(argv, folder, env)
    needles = ("not an audiograd kernel cache",) if command == "cache clear" else ("cannot", "AUDIOGRAD_CACHE_DIR")
    assert_one_line_error(proc.returncode, proc.stderr, command.split()[0], str(folder), *needles)
    assert not list(folder.iterdir())


@pytest.mark.slow  # imports stable-audio-tools and PyTorch in a fresh process
def test_bad_compiler_is_one_line_from_parity(tmp_path):
    env = dict(os.environ, AUDIOGRAD_CACHE_DIR=str(tmp_path / "cache"), CC=shutil.which("false"))
    proc = subprocess.run([sys.executable, "-m", "audiograd", "parity"], env=env, capture_output=True, text=True)
    assert_one_line_error(proc.returncode, proc.stderr, "parity", "CC", "gcc")
