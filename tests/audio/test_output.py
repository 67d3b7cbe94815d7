"""Every writer (audio, .npy latents, training checkpoints) only replaces regular files,
writes through symlinks, checks the destination first and keeps existing files on failure."""
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys

import numpy as np
import pytest
import safetensors.numpy
import soundfile

from audiograd import nn
from audiograd.audio import OutputPathError, atomic_output, check_output_path, write_audio
from audiograd.cli.signals import Interrupted
from audiograd.training import save_checkpoint


def _write_npy(path, value=1.0):
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        np.save(f, np.full(4, value, np.float32))


def _write_wav(path, value=0.5):
    write_audio(path, np.full((1, 64), value, np.float32), 8000)


def _write_checkpoint(path, value=0.0):
    layer = nn.Linear(2, 2)
    layer.weight.assign(layer.weight * 0 + value)
    save_checkpoint(path, layer)


WRITERS = {"npy": _write_npy, "wav": _write_wav, "checkpoint": _write_checkpoint}


def _kind(path):
    mode = os.stat(path).st_mode
    for test, name in ((stat.S_ISFIFO, "fifo"), (stat.S_ISCHR, "chr"), (stat.S_ISSOCK, "sock"),
                       (stat.S_ISDIR, "dir"), (stat.S_ISREG, "file")):
        if test(mode):
            return name


@pytest.fixture
def special(tmp_path):
    """Make a non-regular file of a kind; yields (path, expected words in the error)."""
    made = []

    def make(kind):
        if kind == "fifo":
            path = tmp_path / "pipe.wav"
            os.mkfifo(path)
            return path, "FIFO"
        if kind == "chr":
            return "/dev/null", "character device"
        if kind == "sock":
            path = tmp_path / "s.wav"
            sock = socket.socket(socket.AF_UNIX)
            sock.bind(str(path))
            made.append(sock)
            return path, "socket"
        path = tmp_path / "folder.wav"
        path.mkdir()
        return path, "directory"
    yield make
    for sock in made:
        sock.close()


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("kind", ["fifo", "chr", "sock", "dir"])
@pytest.mark.parametrize("via_link", [False, True])
def test_non_regular_destinations_are_refused_and_kept(tmp_path, special, writer, kind, via_link):
    target, words = special(kind)
    path = target
    if via_link:
        path = tmp_path / "link.wav"
        os.symlink(target, path)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(OutputPathError, match=words) as info:
        WRITERS[writer](path)
    assert str(path) in str(info.value) and "only writes regular files" in str(info.value)
    assert _kind(target) == kind  # still a FIFO / device / socket / directory, not replaced
    assert sorted(os.listdir(tmp_path)) == before  # no temporary or probe file left
    assert os.path.islink(path) == via_link


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("chain", [1, 2])
def test_symlink_is_written_through_and_kept(tmp_path, writer, chain):
    """The target (in another folder) gets the new contents; every link stays a link."""
    (tmp_path / "real").mkdir()
    (tmp_path / "links").mkdir()
    target = tmp_path / "real" / "out.wav"
    WRITERS[writer](target, 0.25)
    first = target.read_bytes()
    os.chmod(target, 0o640)
    links, pointee = [], target
    for i in range(chain):
        link = tmp_path / "links" / f"l{i}.wav"
        os.symlink(os.path.relpath(pointee, link.parent), link)
        links.append(link)
        pointee = link
    WRITERS[writer](links[-1], 0.75)
    assert target.read_bytes() != first
    assert all(os.path.islink(p) for p in links) and os.path.realpath(links[-1]) == str(target)
    assert sorted(os.listdir(tmp_path / "real")) == ["out.wav"] and len(os.listdir(tmp_path / "links")) == chain
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640


@pytest.mark.parametrize("writer", WRITERS)
def test_dangling_symlink_creates_its_target(tmp_path, writer):
    link = tmp_path / "link.wav"
    os.symlink("made.wav", link)
    WRITERS[writer](link)
    assert os.path.islink(link) and (tmp_path / "made.wav").is_file()
    os.symlink(tmp_path / "missing_dir" / "x", tmp_path / "link2.wav")
    with pytest.raises(FileNotFoundError, match="missing_dir"):
        WRITERS[writer](tmp_path / "link2.wav")


def test_symlink_loop_is_refused(tmp_path):
    os.symlink(tmp_path / "b", tmp_path / "a")
    os.symlink(tmp_path / "a", tmp_path / "b")
    with pytest.raises(OutputPathError, match="symlink loop"):
        _write_npy(tmp_path / "a")


def _unwritable_places():
    """Directories that refuse a new file even to root (when the tests run as root)."""
    return ["/proc", "/proc/self"]


@pytest.mark.parametrize("directory", _unwritable_places())
@pytest.mark.parametrize("writer", WRITERS)
def test_unwritable_directory_fails_before_writing(directory, writer):
    path = os.path.join(directory, "out.wav")
    with pytest.raises(OutputPathError, match=f"cannot write {path}: directory {directory} is not writable"):
        check_output_path(path)
    with pytest.raises(OutputPathError, match="not writable"):
        WRITERS[writer](path)


def _without_permission_override():
    """Command prefix that runs a child without root's power to ignore permission bits."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permission bits cannot be made to apply")
    return [setpriv, "--inh-caps=-dac_override", "--bounding-set=-dac_override"]


@pytest.mark.parametrize("writer", WRITERS)
def test_read_only_directory_fails_before_writing(tmp_path, writer):
    """A directory without write permission (chmod 0o555), for a process that cannot override it."""
    read_only = tmp_path / "ro"
    read_only.mkdir()
    os.chmod(read_only, 0o555)
    code = ("import sys\nfrom test_output import WRITERS\n"
            "try:\n    WRITERS[sys.argv[1]](sys.argv[2])\nexcept OSError as e:\n    print(e)\n")
    try:
        proc = subprocess.run(_without_permission_override() + [sys.executable, "-c", code, writer,
                                                               str(read_only / "out.wav")],
                              capture_output=True, text=True, cwd=os.path.dirname(__file__))
    finally:
        os.chmod(read_only, 0o755)
    assert proc.returncode == 0, proc.stderr
    assert f"directory {read_only} is not writable (Permission denied)" in proc.stdout
    assert os.listdir(read_only) == []


# the function each writer hands the temporary path to
LOW_LEVEL = {"npy": (np, "save"), "wav": (soundfile, "write"), "checkpoint": (safetensors.numpy, "save_file")}


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt(),
                                   Interrupted(signal.SIGTERM)], ids=["error", "sigint", "sigterm"])
def test_failure_mid_write_keeps_the_existing_file(tmp_path, monkeypatch, writer, error):
    path = tmp_path / "out.wav"
    WRITERS[writer](path, 0.25)
    os.chmod(path, 0o604)
    before = path.read_bytes()

    def half_write(*args, **kwargs):
        file = args[1] if writer == "checkpoint" else args[0]
        if hasattr(file, "write"):
            file.write(b"half")
        else:
            with open(file, "wb") as f:
                f.write(b"half")
        raise error
    monkeypatch.setattr(*LOW_LEVEL[writer], half_write)
    with pytest.raises(Exception if isinstance(error, Exception) else type(error)):
        WRITERS[writer](path, 0.75)
    assert path.read_bytes() == before and stat.S_IMODE(os.stat(path).st_mode) == 0o604
    assert os.listdir(tmp_path) == ["out.wav"]


@pytest.mark.parametrize("writer", WRITERS)
def test_existing_mode_is_kept_and_new_files_follow_the_umask(tmp_path, writer):
    fresh = tmp_path / "new.wav"
    WRITERS[writer](fresh)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o666 & ~mask
    os.chmod(fresh, 0o600)
    WRITERS[writer](fresh, 0.5)
    assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o600
