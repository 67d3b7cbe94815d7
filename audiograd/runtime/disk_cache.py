"""A content-addressed store of compiled kernels, shared safely between processes.

Each entry is ``<key>.so`` (``<key>.cubin`` for CUDA kernels) with a ``<key>.json`` record of
its SHA-256 and the ``<key>.c`` (``.cu``) source it was built from. Files are written under temporary names and renamed into place, a
per-key lock keeps concurrent processes from building the same entry twice, and an entry whose
binary does not match its record (truncated, overwritten) is rebuilt.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional


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


BINARY_SUFFIXES = (".so", ".cubin")


class DiskCache:
    def __init__(self, root: Path, binary_suffix: str = ".so", source_suffix: str = ".c"):
        self.root = Path(root)
        self.binary_suffix, self.source_suffix = binary_suffix, source_suffix

    def _paths(self, key: str):
        d = self.root / "kernels" / key[:2]
        return d / f"{key}{self.binary_suffix}", d / f"{key}.json", d / f"{key}{self.source_suffix}"

    def source_path(self, key: str) -> Path:
        return self._paths(key)[2]

    def lookup(self, key: str) -> Optional[Path]:
        """The entry's library if present and intact, else None."""
        so, meta, _ = self._paths(key)
        try:
            record = json.loads(meta.read_text())
            if so.stat().st_size == record["size"] and _sha256(so) == record["sha256"]:
                return so
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return None

    @contextmanager
    def _lock(self, key: str):
        d = self.root / "kernels" / key[:2]
        d.mkdir(parents=True, exist_ok=True)
        with open(d / f"{key}.lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def build(self, key: str, source: str, compile_fn: Callable[[Path, Path], None]) -> Path:
        """Return the entry for ``key``, compiling ``source`` with ``compile_fn(src, out)`` if needed."""
        so, meta, src = self._paths(key)
        with self._lock(key):
            found = self.lookup(key)  # another process may have built it while we waited
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
            atomic_write(meta, json.dumps({"sha256": digest, "size": size}).encode())
            return so

    def info(self) -> dict:
        entries, size = 0, 0
        if (self.root / "kernels").exists():
            for p in (self.root / "kernels").rglob("*"):
                if p.is_file():
                    size += p.stat().st_size
                    entries += p.suffix in BINARY_SUFFIXES
        return {"path": str(self.root), "kernels": entries, "bytes": size}

    def clear(self) -> int:
        """Remove every entry; returns how many kernels were removed."""
        n = self.info()["kernels"]
        shutil.rmtree(self.root / "kernels", ignore_errors=True)
        return n
