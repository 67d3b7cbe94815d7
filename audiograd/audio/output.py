"""Safe output files: every file audiograd writes goes through :func:`atomic_output`.

Rules (the same for audio, latents, images and training checkpoints):

- only regular files are written. An existing FIFO, character or block device, socket or
  directory at the destination is refused (``OutputPathError`` naming the path and what it
  is), so writing to ``/dev/null`` or a named pipe never replaces it with a file;
- a symlink is written through: the data goes to a temporary file in the *target's*
  directory which then atomically replaces the target, so the link stays a link and points
  at the new contents. A dangling symlink creates its target (what ``open(path, "w")`` and
  shell redirection do), provided the target's directory exists; a symlink loop is refused;
- the destination is checked before any work (:func:`check_output_path`): its directory must
  exist and a temporary file must actually be creatable there (permission bits alone say
  little when running as root, and read-only mounts ignore them);
- the existing file stays intact on any failure (including SIGINT/SIGTERM turned into
  exceptions), no temporary file is left behind, and a replaced file keeps its permission
  bits (and, where allowed, its owner).
"""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Iterator, Union

PathLike = Union[str, os.PathLike]

_KINDS = [(stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket")]


class OutputPathError(OSError):
    """An output path audiograd refuses to write (not a regular file, loop, unwritable place)."""


def resolve_output(path: PathLike) -> Path:
    """The file that writing ``path`` really replaces: ``path`` itself, or its symlink target.

    Raises OutputPathError if the destination exists and is not a regular file, or is a
    symlink loop; FileNotFoundError if the destination's directory does not exist.
    """
    path = Path(path)
    target = Path(os.path.realpath(path)) if os.path.islink(path) else path
    if os.path.islink(target):  # realpath stops at a loop without raising
        raise OutputPathError(f"output {path} is a symlink loop")
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as e:
        raise OutputPathError(f"output {path}: cannot inspect it ({e.strerror or e})") from None
    if mode is not None and not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        shown = path if target == path else f"{path} (-> {target})"
        raise OutputPathError(f"output {shown} is {kind}; audiograd only writes regular files")
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(f"output directory does not exist: {directory}")
    return target


def check_output_path(path: PathLike) -> Path:
    """Check, before any work, that ``path`` can be written; return the file to replace.

    Besides :func:`resolve_output`'s checks, creates and removes a temporary file in the
    destination's directory, the only test that also holds for root and read-only mounts.
    """
    target = resolve_output(path)
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=target.parent)
    except OSError as e:
        raise OutputPathError(f"cannot write {path}: directory {target.parent} is not writable "
                              f"({e.strerror or e})") from None
    os.close(fd)
    os.unlink(probe)
    return target


@contextlib.contextmanager
def atomic_output(path: PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``'s real file; on success it replaces that file.

    On any exception (KeyboardInterrupt and SIGTERM turned into an exception included) the
    temporary file is removed, the existing file is left untouched and the exception
    propagates. ``suffix`` keeps an extension on the temporary name for writers that choose a
    format from it. See the module docstring for FIFOs, devices and symlinks.
    """
    target = check_output_path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}", dir=target.parent)
    except OSError as e:
        raise OutputPathError(f"cannot write {path}: {e.strerror or e}") from None
    tmp = Path(tmp)
    try:
        os.close(fd)
        yield tmp
        _copy_mode_and_owner(target, tmp)  # after the writer, which may have made the file anew
        _flush_to_disk(tmp)
        resolve_output(path)  # the destination may have changed kind while the work ran
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _copy_mode_and_owner(target: Path, tmp: Path) -> None:
    """mkstemp makes the file private; give it the target's mode (or a plain open()'s)."""
    try:
        st = os.stat(target)
    except FileNotFoundError:
        os.chmod(tmp, 0o666 & ~_umask())
        return
    with contextlib.suppress(OSError):  # only root may give a file away; others keep their own
        if (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
            os.chown(tmp, st.st_uid, st.st_gid)
    os.chmod(tmp, stat.S_IMODE(st.st_mode))  # after chown, which clears set-id bits


def _flush_to_disk(tmp: Path) -> None:
    """fsync the written data, so a crash after the rename cannot leave an empty file."""
    with contextlib.suppress(OSError):
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
