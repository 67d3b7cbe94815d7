"""Find the audio files of a dataset: a local folder or file, or any URI pyarrow's filesystems read.

Files are found recursively with the extensions stable-audio-tools' loader takes; hidden files
and folders (names starting with ".") are left out, as are the temporary files of our writers.
Each file gets a *relpath*, its path under the input with "/" separators, which names its
outputs and its entry in the report. The list is sorted, so every run sees the same order.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, List, Tuple

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".aif", ".aiff")


def is_uri(location: str) -> bool:
    """True for ``scheme://...`` locations (read through pyarrow), False for local paths."""
    return "://" in location


def _is_audio(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS


def list_audio(location: str) -> List[Tuple[str, str]]:
    """``[(path, relpath), ...]`` of the audio files at ``location``, sorted by relpath.

    ``path`` is what :func:`local_copy` opens (a local path, or the URI of a remote file).
    Raises FileNotFoundError if ``location`` does not exist.
    """
    found = _list_uri(location) if is_uri(location) else _list_local(Path(location))
    return sorted(found, key=lambda item: item[1])


def _list_local(root: Path) -> List[Tuple[str, str]]:
    if root.is_file():
        return [(str(root), root.name)]
    if not root.is_dir():
        raise FileNotFoundError(f"input not found: {root}")
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        rel_folder = os.path.relpath(folder, root)
        for name in files:
            if _is_audio(name):
                rel = name if rel_folder == "." else f"{rel_folder}/{name}".replace(os.sep, "/")
                found.append((os.path.join(folder, name), rel))
    return found


def _list_uri(uri: str) -> List[Tuple[str, str]]:
    from pyarrow import fs as pafs
    filesystem, root = pafs.FileSystem.from_uri(uri)
    info = filesystem.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"input not found: {uri}")
    prefix = uri[:len(uri) - len(uri.split("://", 1)[1])]  # "s3://", "file://"
    if info.type == pafs.FileType.File:
        return [(uri, info.base_name)]
    found = []
    for entry in filesystem.get_file_info(pafs.FileSelector(root, recursive=True)):
        rel = entry.path[len(root.rstrip("/")) + 1:]
        if entry.type == pafs.FileType.File and _is_audio(entry.base_name) \
                and not any(part.startswith(".") for part in rel.split("/")):
            found.append((_join_uri(prefix, entry.path), rel))
    return found


def _join_uri(prefix: str, path: str) -> str:
    # pyarrow gives local paths with a leading "/" and bucket paths without one
    return prefix + path if prefix != "file://" or path.startswith("/") else prefix + "/" + path


@contextlib.contextmanager
def local_copy(path: str) -> Iterator[str]:
    """A local file holding ``path``'s bytes: the file itself, or a temporary copy of a remote one
    (decoders need a seekable local file; the copy is removed afterwards)."""
    if not is_uri(path):
        yield path
        return
    from pyarrow import fs as pafs
    filesystem, inner = pafs.FileSystem.from_uri(path)
    fd, tmp = tempfile.mkstemp(prefix="audiograd-", suffix=os.path.splitext(inner)[1])
    try:
        with os.fdopen(fd, "wb") as out, filesystem.open_input_stream(inner) as stream:
            shutil.copyfileobj(stream, out, 1 << 20)
        yield tmp
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
