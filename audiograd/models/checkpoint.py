"""Read model weights from safetensors files and PyTorch checkpoints, without running pickle code.

PyTorch's ``.ckpt``/``.pt`` files are zip archives: a pickle describing the state dict plus one
raw file per storage. The pickle is read by an unpickler that only knows how to rebuild
tensors (and plain containers); any other object in the file is an error, so a malicious
checkpoint cannot execute code.
"""
from __future__ import annotations

import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Dict

import numpy as np


class CheckpointError(ValueError):
    """A file that is not a readable checkpoint (truncated, foreign, or unsafe)."""


_STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
                   "BFloat16Storage": None, "LongStorage": np.int64, "IntStorage": np.int32,
                   "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
                   "BoolStorage": np.bool_}


class _StorageType:
    def __init__(self, name: str):
        self.name = name


def _rebuild_tensor(storage, offset, size, stride, *_):
    arr = storage
    itemsize = arr.dtype.itemsize
    if not size:
        return arr[offset:offset + 1].reshape(())
    return np.lib.stride_tricks.as_strided(arr[offset:], shape=tuple(size),
                                           strides=tuple(s * itemsize for s in stride)).copy()


def _rebuild_parameter(data, *_):
    return data


class _SafeUnpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, prefix: str):
        super().__init__(file)
        self.archive, self.prefix = archive, prefix

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise CheckpointError(f"checkpoint refers to {module}.{name}, which a weights file does not need; "
                              "refusing to load it (only tensors and containers are allowed)")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, _numel = pid[:5]
        if kind != "storage":
            raise CheckpointError(f"unsupported persistent object {kind!r} in checkpoint")
        name = storage_type.name if isinstance(storage_type, _StorageType) else str(storage_type)
        dtype = _STORAGE_DTYPES.get(name)
        if dtype is None:
            raise CheckpointError(f"tensor storage type {name} is not supported")
        return np.frombuffer(self.archive.read(f"{self.prefix}/data/{key}"), dtype=dtype)


def _load_torch_zip(path: Path) -> Dict[str, np.ndarray]:
    try:
        archive = zipfile.ZipFile(path)
        names = archive.namelist()
    except zipfile.BadZipFile as e:
        raise CheckpointError(f"{path}: not a safetensors file or a PyTorch zip checkpoint ({e})") from None
    pkl = next((n for n in names if n.endswith("/data.pkl")), None)
    if pkl is None:
        raise CheckpointError(f"{path}: zip archive without data.pkl: not a PyTorch checkpoint")
    with archive.open(pkl) as f:
        try:
            obj = _SafeUnpickler(f, archive, pkl.rsplit("/", 1)[0]).load()
        except (pickle.UnpicklingError, EOFError, KeyError, zipfile.BadZipFile) as e:
            raise CheckpointError(f"{path}: corrupt PyTorch checkpoint ({e})") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: checkpoint holds a {type(obj).__name__}, not a state dict")
    return {k: v for k, v in obj.items() if isinstance(v, np.ndarray)}


def _load_safetensors(path: Path) -> Dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable safetensors file ({e})") from None


def load_state(path) -> Dict[str, np.ndarray]:
    """All tensors of a safetensors file or a PyTorch checkpoint, by key, as numpy arrays."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    with open(path, "rb") as f:
        head = f.read(8)
    if head[:2] == b"PK":
        return _load_torch_zip(path)
    if len(head) < 8:
        raise CheckpointError(f"{path}: file too short to be a checkpoint")
    return _load_safetensors(path)
