"""How many frames an audio file's header promises, to detect files cut short.

libsndfile trusts the file over the header for WAV: when the data chunk claims more bytes
than the file holds it silently reports (and reads) only the frames present. The promise is
therefore read from the RIFF header itself. For FLAC the STREAMINFO total (which libsndfile
reports as ``frames``) is the promise and decoding a cut file stops with an error part-way.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Optional

_MAX_CHUNKS = 1024          # a RIFF header with more chunks before "data" is not worth walking
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # streaming writers leave these when the length is unknown


def wav_declared_frames(path: Path) -> Optional[int]:
    """Frames the ``data`` chunk of a RIFF/WAVE file claims, or None if the header does not say
    (not RIFF, RF64, streaming size, no ``fmt``/``data`` chunk before the limit)."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        block_align = None
        for _ in range(_MAX_CHUNKS):
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            chunk_id, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if chunk_id == b"fmt ":
                fmt = f.read(min(size, 16))
                if len(fmt) < 14:
                    return None
                block_align = struct.unpack("<H", fmt[12:14])[0]
                f.seek(size - len(fmt) + (size & 1), 1)
            elif chunk_id == b"data":
                if not block_align or size in _UNKNOWN_SIZES:
                    return None
                return size // block_align
            else:
                f.seek(size + (size & 1), 1)  # chunks are padded to an even size
    return None


def declared_frames(path: Path, info) -> Optional[int]:
    """Frames the header of ``path`` promises (``info`` is its soundfile.info), or None."""
    if info.format in ("WAV", "WAVEX"):
        return wav_declared_frames(path)
    if info.format == "FLAC" and info.frames > 0:
        return int(info.frames)
    return None
