"""Read model weights from safetensors files and PyTorch checkpoints, treating every file as hostile.

Three formats are recognised by their first bytes: PyTorch zip checkpoints (``PK``), legacy
PyTorch pickles (``\\x80``, from ``_use_new_zipfile_serialization=False``) and safetensors (an
8-byte header length then ``{``). No pickle code is ever run (see ``pickle_reader``), every
size in a file is checked against the bytes really present before anything is allocated, and
anything wrong ends in one ``CheckpointError`` that starts with the file's name.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np

from .checkpoint_errors import CheckpointError

__all__ = ["CheckpointError", "load_state"]

MAX_NONFINITE_KEYS_SHOWN = 5


def _reader(path: Path, head: bytes):
    from .safetensors_file import load_safetensors
    from .torch_checkpoint import load_torch_legacy, load_torch_zip
    # safetensors first: its 8-byte header length may begin with any byte, a pickle's 0x80 too
    # (a zip's or a torch pickle's ninth byte is never "{")
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors file", load_safetensors
    if head[:4] == b"PK\x03\x04":
        return "PyTorch zip checkpoint", load_torch_zip
    if head[:1] == b"\x80":
        return "legacy PyTorch checkpoint", load_torch_legacy
    raise CheckpointError(f"{path}: not a safetensors file, PyTorch zip checkpoint or legacy PyTorch checkpoint")


def load_state(path, allow_nonfinite: bool = False) -> Dict[str, np.ndarray]:
    """All tensors of a safetensors file or a PyTorch checkpoint (zip or legacy), by key, as numpy arrays.

    bfloat16 tensors come back as float32 (exact). Non-tensor entries (step counters, names)
    are skipped. Weights holding NaN or infinity are refused, naming the keys, unless
    ``allow_nonfinite``: a model loaded from them would silently compute NaN.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read the file ({e.strerror or e})") from None
    if len(head) < 9:
        raise CheckpointError(f"{path}: file too short ({len(head)} bytes) to be a checkpoint")
    kind, reader = _reader(path, head)
    try:
        state = reader(path)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    except RecursionError:
        raise CheckpointError(f"{path}: {kind} is nested too deeply to be a weights file") from None
    except MemoryError:
        raise CheckpointError(f"{path}: {kind} asks for more memory than is available") from None
    except Exception as e:  # any other failure of a reader on a hostile file is still a bad file
        raise CheckpointError(f"{path}: corrupt {kind} ({type(e).__name__}: {e})") from None
    if not allow_nonfinite:
        _check_finite(path, state)
    return state


def _check_finite(path: Path, state: Dict[str, np.ndarray]) -> None:
    bad = [key for key, value in state.items()
           if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all()]
    if bad:
        shown = ", ".join(bad[:MAX_NONFINITE_KEYS_SHOWN]) + (f" and {len(bad) - MAX_NONFINITE_KEYS_SHOWN} more"
                                                             if len(bad) > MAX_NONFINITE_KEYS_SHOWN else "")
        raise CheckpointError(f"{path}: weights hold NaN or infinity in {len(bad)} tensor(s): {shown} "
                              "(pass allow_nonfinite=True to load them anyway)")
