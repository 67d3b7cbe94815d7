"""A content-addressed store of compiled kernels, shared safely between processes.

Layout: ``<root>/CACHEDIR.TAG`` marks the folder as audiograd's kernel cache (and tells backup
tools to skip it); each entry lives in ``<root>/kernels/<key[:2]>/`` as ``<key>.so`` (``.cubin``
for CUDA kernels), a ``<key>.json`` record of the key, the binary's SHA-256 and size and the
source's SHA-256, and the ``<key>.c`` (``.cu``) source it was built from. Files are written under
temporary names and renamed into place, a per-key lock keeps concurrent processes from building
the same entry twice, and an entry whose binary or record does not match its key is rebuilt.

Only names of this scheme are ever deleted, and only inside a folder carrying the marker:
pointing the cache at a user's folder never deletes the user's files. The marker is written
when audiograd creates the folder, or finds it empty (or holding only ``kernels/``); a foreign
non-empty folder is used without a marker (entries go under its ``kernels/`` subfolder, nothing
else is touched) and ``clear`` refuses to delete anything there.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

MARKER_NAME = "CACHEDIR.TAG"
MARKER_TEXT = ("Signature: 8a477f597d28d172789f06886806bc55\n"
               "# This file is a cache directory tag created by audiograd: this folder is its\n"
               "# compiled-kernel cache. 'audiograd cache clear' deletes only its entries.\n")
RECORD_FORMAT = 2
BINARY_SUFFIXES = (".so", ".cubin")
_KEY = re.compile(r"[0-9a-f]{64}")
_ENTRY_SUFFIXES = r"(?:so|cubin|json|c|cu|lock|log)"
_ENTRY_NAME = re.compile(rf"([0-9a-f]{{64}})\.{_ENTRY_SUFFIXES}(?:\.[A-Za-z0-9_.-]+\.tmp)?")
_SHARD_NAME = re.compile(r"[0-9a-f]{2}")
_WHAT_TO_DO = "set AUDIOGRAD_CACHE_DIR (or audiograd.config.cache_dir) to a writable folder"


class CacheError(RuntimeError):
    """The kernel cache folder cannot be used (not a directory, not writable, not audiograd's)."""


# every kernel library exports its cache key under this name; loaders check it before use
ENTRY_KEY_SYMBOL = "audiograd_entry_key"


class CacheStats:
    """Counters for tests and debugging: compiles run, kernels loaded from disk, memory hits,
    disk entries rejected."""

    def __init__(self):
        self.compiled = self.loaded = self.memory_hits = 0
        self.rejected = 0  # entries found on disk but not the kernel their key names (rebuilt)

    def __repr__(self):
        return (f"CacheStats(compiled={self.compiled}, loaded={self.loaded}, memory_hits={self.memory_hits}, "
                f"rejected={self.rejected})")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either nothing or all of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@contextmanager
def fresh_alias(path: Path) -> Iterator[Path]:
    """A new name for the file at ``path`` while the block runs (a hard link, else a copy).

    Loaders keep what they opened by path (the dynamic loader's handles, CuPy's module memo): a
    binary rebuilt at a path this process already loaded is only really loaded through a name
    it has never seen."""
    alias = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        os.link(path, alias)
    except OSError:
        shutil.copyfile(path, alias)
    try:
        yield alias
    finally:
        alias.unlink(missing_ok=True)


def is_entry_name(name: str, shard: str) -> bool:
    """Whether ``name`` is one of the cache's own file names for a key in the ``shard`` folder."""
    m = _ENTRY_NAME.fullmatch(name)
    return m is not None and m.group(1)[:2] == shard


def _describe(path: Path) -> str:
    """What is at ``path`` instead of a folder, for error messages."""
    try:
        st = path.lstat()
    except OSError:
        return "missing"
    if stat.S_ISLNK(st.st_mode):
        return "a symlink to " + ("a missing target" if not path.exists() else "something that is not a folder")
    if stat.S_ISREG(st.st_mode):
        return "a regular file"
    return "not a folder"


class DiskCache:
    def __init__(self, root: Path, binary_suffix: str = ".so", source_suffix: str = ".c"):
        self.root = Path(root)
        self.binary_suffix, self.source_suffix = binary_suffix, source_suffix

    # ---- the folder ------------------------------------------------------------------------
    def _fail(self, error: OSError, doing: str) -> CacheError:
        reason = error.strerror or str(error)
        if error.errno == errno.ENOTDIR:
            reason = "a part of the path is a file, not a folder"
        return CacheError(f"kernel cache {self.root}: cannot {doing} ({reason}); {_WHAT_TO_DO}")

    def is_marked(self) -> bool:
        """Whether the root carries audiograd's marker (so its entries may be deleted)."""
        try:
            with open(self.root / MARKER_NAME, "rb") as f:
                return f.read(len(MARKER_TEXT) + 1).decode("utf-8", "replace") == MARKER_TEXT
        except OSError:
            return False

    def _check_root(self) -> bool:
        """Raise CacheError if the root exists but is no usable folder; return whether it exists."""
        if self.root.is_dir():
            return True
        if os.path.lexists(self.root):
            raise CacheError(f"kernel cache {self.root} is {_describe(self.root)}, not a folder; {_WHAT_TO_DO}")
        for parent in self.root.parents:
            if os.path.lexists(parent):
                if not parent.is_dir():
                    raise CacheError(f"kernel cache {self.root} lies under {parent}, which is "
                                     f"{_describe(parent)}, not a folder; {_WHAT_TO_DO}")
                break
        return False

    def ensure_root(self) -> None:
        """Create the cache folder (with its marker) if needed; CacheError if it is unusable."""
        try:
            if not self._check_root():
                self.root.mkdir(parents=True, exist_ok=True)
            if not self.is_marked() and all(p.name == "kernels" for p in self.root.iterdir()):
                atomic_write(self.root / MARKER_NAME, MARKER_TEXT.encode())
            (self.root / "kernels").mkdir(exist_ok=True)
            if not os.access(self.root / "kernels", os.W_OK | os.X_OK):
                raise PermissionError(errno.EACCES, "permission denied")
        except OSError as e:
            raise self._fail(e, "create or write its folder") from None

    # ---- entries ---------------------------------------------------------------------------
    def _paths(self, key: str):
        if not _KEY.fullmatch(key):
            raise ValueError(f"kernel cache key must be 64 hex digits, got {key!r}")
        d = self.root / "kernels" / key[:2]
        return d / f"{key}{self.binary_suffix}", d / f"{key}.json", d / f"{key}{self.source_suffix}"

    def source_path(self, key: str) -> Path:
        return self._paths(key)[2]

    def lookup(self, key: str) -> Optional[Path]:
        """The entry's binary if present, bound to ``key`` by its record and intact, else None."""
        so, meta, _ = self._paths(key)
        try:
            record = json.loads(meta.read_text())
            if (record["key"] == key and so.stat().st_size == record["size"]
                    and _sha256(so) == record["sha256"]):
                return so
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return None

    @contextmanager
    def _lock(self, key: str):
        d = self.root / "kernels" / key[:2]
        d.mkdir(parents=True, exist_ok=True)
        lock = d / f"{key}.lock"
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(lock, flags, 0o644)
        except OSError as e:
            if e.errno != errno.ELOOP:
                raise
            # a symlink at the lock's name (we never make one): remove it rather than write through it
            lock.unlink()
            fd = os.open(lock, flags, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def build(self, key: str, source: str, compile_fn: Callable[[Path, Path], None],
              force: bool = False) -> Path:
        """Return the entry for ``key``, compiling ``source`` with ``compile_fn(src, out)`` if needed.

        ``force`` rebuilds an entry that looks intact on disk (its binary was found wrong when loaded).
        Compiler errors propagate unchanged; failures to write the folder raise CacheError.
        """
        so, meta, src = self._paths(key)
        self.ensure_root()
        try:
            with self._lock(key):
                found = None if force else self.lookup(key)  # another process may have built it meanwhile
                if found is not None:
                    return found
                atomic_write(src, source.encode())
                fd, tmp = tempfile.mkstemp(dir=so.parent, prefix=so.name + ".", suffix=".tmp")
                os.close(fd)
                try:
                    compile_fn(src, Path(tmp))
                    digest, size = _sha256(Path(tmp)), os.path.getsize(tmp)
                    os.replace(tmp, so)
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
                record = {"format": RECORD_FORMAT, "key": key, "sha256": digest, "size": size,
                          "source_sha256": hashlib.sha256(source.encode()).hexdigest()}
                atomic_write(meta, json.dumps(record).encode())
                return so
        except OSError as e:
            raise self._fail(e, f"write entry {key[:16]}...") from None

    # ---- inspecting and clearing -----------------------------------------------------------
    def _entry_files(self):
        """(path, is_binary) for every regular file named like an entry; symlinks are never listed."""
        kernels = self.root / "kernels"
        if kernels.is_symlink() or not kernels.is_dir():
            return
        for shard in os.scandir(kernels):
            if not (_SHARD_NAME.fullmatch(shard.name) and shard.is_dir(follow_symlinks=False)):
                continue
            for f in os.scandir(shard.path):
                if f.is_file(follow_symlinks=False) and is_entry_name(f.name, shard.name):
                    yield Path(f.path), f.name.endswith(BINARY_SUFFIXES)

    def info(self) -> dict:
        """The cache's path, its number of kernels and the bytes its entries take."""
        entries, size = 0, 0
        try:
            if self._check_root():
                for path, is_binary in self._entry_files():
                    size += path.lstat().st_size
                    entries += is_binary
        except OSError as e:
            raise self._fail(e, "read its folder") from None
        return {"path": str(self.root), "kernels": entries, "bytes": size, "marked": self.is_marked()}

    def clear(self) -> int:
        """Delete the entries (only files of the entry scheme, in a marked cache); returns the kernel count.

        Raises CacheError, deleting nothing, if the folder is not marked as audiograd's cache.
        """
        try:
            if not self._check_root():
                return 0
            if not self.is_marked():
                raise CacheError(
                    f"{self.root} is not an audiograd kernel cache (it has no {MARKER_NAME} written by "
                    "audiograd), so nothing was deleted; point AUDIOGRAD_CACHE_DIR at the kernel cache")
            removed = 0
            for path, is_binary in list(self._entry_files()):
                path.unlink(missing_ok=True)
                removed += is_binary
            kernels = self.root / "kernels"
            if kernels.is_dir() and not kernels.is_symlink():
                for d in os.scandir(kernels):
                    if _SHARD_NAME.fullmatch(d.name) and d.is_dir(follow_symlinks=False):
                        self._rmdir_if_empty(Path(d.path))
        except OSError as e:
            raise self._fail(e, "delete its entries") from None
        return removed

    @staticmethod
    def _rmdir_if_empty(path: Path) -> None:
        try:
            path.rmdir()
        except OSError:
            pass  # holds files that are not ours
