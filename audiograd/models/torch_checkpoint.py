"""Read PyTorch ``.ckpt``/``.pt`` files (zip and legacy formats) as numpy arrays, trusting nothing in them.

Zip format: ``<prefix>/data.pkl`` (the object pickle) plus one raw ``<prefix>/data/<key>`` entry
per storage, in the byte order named by ``<prefix>/byteorder`` (little when absent). Legacy format
(``torch.save(..., _use_new_zipfile_serialization=False)``): five pickles (magic number, protocol,
system info, the object, the storage key list) then every storage as an int64 element count and
its raw little-endian bytes. In both, storage sizes are checked against the bytes really present
before anything is read, and every tensor record is checked by ``tensor_records`` before a view
of it is made.
"""
from __future__ import annotations

import math
import mmap
import struct
import zipfile
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Callable, Dict

import numpy as np

from .checkpoint_errors import CheckpointError
from .pickle_reader import Global, read_pickle
from .tensor_records import TORCH_GLOBALS, StorageRef, TensorRecord, materialize, storage_ref, tensor_record

LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
LEGACY_PROTOCOL = 1001
MAX_PICKLE_BYTES = 1 << 30


def _reduce(func: Global, args: tuple):
    """What a whitelisted call in a checkpoint pickle evaluates to (records, never real objects)."""
    name, n = func.name, len(args)
    if name == "OrderedDict" and n == 0:
        return OrderedDict()
    if name == "_rebuild_tensor_v2" and n in (6, 7):
        return tensor_record(*args[:4])
    if name == "_rebuild_tensor" and n == 4:
        return tensor_record(*args)
    if name in ("_rebuild_parameter", "_rebuild_parameter_with_state") and n == (3 if name == "_rebuild_parameter"
                                                                                 else 4):
        if not isinstance(args[0], TensorRecord):
            raise CheckpointError(f"{func} wraps a {type(args[0]).__name__}, not a tensor")
        return args[0]
    if name == "Size" and n == 1 and isinstance(args[0], tuple):
        return args[0]
    raise CheckpointError(f"pickle calls {func} with {n} argument(s) of types "
                          f"({', '.join(type(a).__name__ for a in args)}), which is not a tensor record")


class _Storages:
    """Persistent-id handler that remembers each storage and insists every mention of a key agrees."""

    def __init__(self, legacy: bool):
        self.legacy = legacy
        self.refs: Dict[str, StorageRef] = {}

    def __call__(self, pid) -> StorageRef:
        ref, view = storage_ref(pid, view_ok=self.legacy)
        if view is not None:
            raise CheckpointError(f"storage {ref.key}: old-style storage views are not supported")
        known = self.refs.setdefault(ref.key, ref)
        if known != ref:
            raise CheckpointError(f"storage {ref.key} is described twice differently ({known.type_name} x "
                                  f"{known.numel}, {ref.type_name} x {ref.numel})")
        return ref


def _state_records(obj) -> Dict[str, TensorRecord]:
    """The tensors of a state dict (or of a Lightning checkpoint's ``state_dict``); other leaves are skipped."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if isinstance(obj, TensorRecord):
        raise CheckpointError("the file holds a single tensor, not a state dict")
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint holds a {type(obj).__name__}, not a state dict")
    records = {}
    for key, value in obj.items():
        if isinstance(value, TensorRecord):
            if not isinstance(key, str):
                raise CheckpointError(f"tensor stored under a {type(key).__name__} key {key!r}, not a name")
            records[key] = value
    return records


def _materialize_all(records: Dict[str, TensorRecord], storage_data: Callable[[StorageRef], np.ndarray],
                     budget: int) -> Dict[str, np.ndarray]:
    """Arrays for all records, each storage read once; refuses to produce more than ``budget`` bytes."""
    cache: Dict[str, np.ndarray] = {}
    users = Counter(record.storage.key for record in records.values())
    out, produced = {}, 0
    for key, record in records.items():
        widening = 2 if record.storage.type_name == "BFloat16Storage" else 1
        produced += math.prod(record.size) * record.storage.dtype.itemsize * widening
        if produced > budget:
            raise CheckpointError(f"tensors up to {key!r} would take {produced} bytes, far more than the file's "
                                  "storages hold (views repeating the same data); refusing")
        ref = record.storage
        if ref.key not in cache:
            cache[ref.key] = storage_data(ref)
        try:
            out[key] = materialize(record, cache[ref.key], owned=users[ref.key] == 1)
        except CheckpointError as e:
            raise CheckpointError(f"key {key!r}: {e}") from None
    return out


def _budget(file_size: int) -> int:
    return 8 * file_size + (256 << 20)


def load_torch_zip(path: Path) -> Dict[str, np.ndarray]:
    """Tensors of a zip-format PyTorch checkpoint, by key."""
    file_size = path.stat().st_size
    with zipfile.ZipFile(path) as archive:
        infos = {info.filename: info for info in archive.infolist()}
        pkl = sorted(n for n in infos if n.endswith("/data.pkl") and n.count("/") == 1)
        if not pkl:
            raise CheckpointError("zip archive without <name>/data.pkl: not a PyTorch checkpoint")
        prefix = pkl[0][:-len("/data.pkl")]
        order = _read_entry(archive, infos, f"{prefix}/byteorder", 16, file_size, exact=False) \
            if f"{prefix}/byteorder" in infos else b"little"
        if order not in (b"little", b"big"):
            raise CheckpointError(f"byteorder entry says {order[:16]!r}, expected 'little' or 'big'")
        data = _read_entry(archive, infos, pkl[0], MAX_PICKLE_BYTES, file_size, exact=False)
        storages = _Storages(legacy=False)
        obj, _ = read_pickle(data, 0, TORCH_GLOBALS, _reduce, storages)
        records = _state_records(obj)

        def storage_data(ref: StorageRef) -> np.ndarray:
            raw = _read_entry(archive, infos, f"{prefix}/data/{ref.key}", ref.nbytes, file_size, exact=True,
                              file=file)
            return np.frombuffer(raw, dtype=ref.dtype.newbyteorder("<" if order == b"little" else ">"))
        with open(path, "rb") as file:
            return _materialize_all(records, storage_data, _budget(file_size))


def _read_entry(archive: zipfile.ZipFile, infos, name: str, size: int, file_size: int, exact: bool,
                file=None):
    """The bytes of one zip entry, at most ``size`` (exactly ``size`` if ``exact``), whatever its header claims.

    With ``file`` (the archive opened for reading), an uncompressed entry is read straight into a
    fresh array (no intermediate bytes object; bounds checked against the file's size)."""
    info = infos.get(name)
    if info is None:
        raise CheckpointError(f"zip entry {name} is missing")
    if info.compress_size > file_size:
        raise CheckpointError(f"zip entry {name} claims {info.compress_size} stored bytes in a {file_size}-byte file")
    if exact and info.file_size != size:
        raise CheckpointError(f"zip entry {name} holds {info.file_size} bytes, its tensor record needs {size}")
    if not exact and info.file_size > size:
        raise CheckpointError(f"zip entry {name} claims {info.file_size} bytes, more than the {size} allowed")
    if file is not None and exact and info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 1:
        return _read_stored(file, info, size, file_size)
    with archive.open(info) as f:
        raw = f.read(size + 1)
    if len(raw) > size or (exact and len(raw) != size):
        raise CheckpointError(f"zip entry {name} holds {len(raw)} bytes, expected {'exactly' if exact else 'at most'}"
                              f" {size}")
    return raw


def _read_stored(file, info: zipfile.ZipInfo, size: int, file_size: int) -> np.ndarray:
    """An uncompressed entry's ``size`` bytes, located through its local header."""
    file.seek(info.header_offset)
    head = file.read(30)
    if len(head) < 30 or head[:4] != b"PK\x03\x04" or struct.unpack_from("<H", head, 8)[0] != zipfile.ZIP_STORED:
        raise CheckpointError(f"zip entry {info.filename}: its local header is missing or disagrees with the "
                              "archive's directory")
    name_len, extra_len = struct.unpack_from("<HH", head, 26)
    start = info.header_offset + 30 + name_len + extra_len
    if start + size > file_size:
        raise CheckpointError(f"zip entry {info.filename} needs {size} bytes from offset {start}, past the end "
                              f"of the {file_size}-byte file")
    out = np.empty(size, np.uint8)
    file.seek(start)
    if file.readinto(out) != size:
        raise CheckpointError(f"zip entry {info.filename} ends early")
    return out


def load_torch_legacy(path: Path) -> Dict[str, np.ndarray]:
    """Tensors of a legacy (non-zip) PyTorch checkpoint, by key."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        return _read_legacy(buf)


def _plain(func: Global, args: tuple):
    raise CheckpointError(f"legacy header pickle calls {func}, which a header never does")


def _no_pid(pid):
    raise CheckpointError("legacy header pickle refers to a storage")


def _read_legacy(buf) -> Dict[str, np.ndarray]:
    magic, pos = read_pickle(buf, 0, (), _plain, _no_pid)
    if magic != LEGACY_MAGIC:
        raise CheckpointError("not a PyTorch checkpoint (wrong magic number)")
    protocol, pos = read_pickle(buf, pos, (), _plain, _no_pid)
    if protocol != LEGACY_PROTOCOL:
        raise CheckpointError(f"legacy PyTorch format version {protocol!r} is not supported (expected 1001)")
    info, pos = read_pickle(buf, pos, (), _plain, _no_pid)
    if not isinstance(info, dict) or info.get("little_endian") is not True:
        raise CheckpointError("legacy checkpoint written on a big-endian machine (or without byte order "
                              "information); only little-endian files are supported")
    storages = _Storages(legacy=True)
    obj, pos = read_pickle(buf, pos, TORCH_GLOBALS, _reduce, storages)
    keys, pos = read_pickle(buf, pos, (), _plain, _no_pid)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys) or len(set(keys)) != len(keys):
        raise CheckpointError("legacy storage key list is not a list of distinct names")
    missing = set(storages.refs) - set(keys)
    if missing:
        raise CheckpointError(f"storages {sorted(missing)[:3]} are used but not in the storage key list")
    located = {}
    for key in keys:
        if len(buf) - pos < 8:
            raise CheckpointError(f"file ends before storage {key}'s element count")
        (numel,) = struct.unpack_from("<q", buf, pos)
        ref = storages.refs.get(key)
        if ref is None:
            raise CheckpointError(f"storage {key} is in the key list but no tensor uses it")
        if numel != ref.numel:
            raise CheckpointError(f"storage {key} holds {numel} elements, its tensor record says {ref.numel}")
        if ref.nbytes > len(buf) - pos - 8:
            raise CheckpointError(f"storage {key} needs {ref.nbytes} bytes, the file has "
                                  f"{len(buf) - pos - 8} left")
        located[key] = pos + 8
        pos += 8 + ref.nbytes
    records = _state_records(obj)

    def storage_data(ref: StorageRef) -> np.ndarray:
        return np.frombuffer(buf, dtype=ref.dtype, count=ref.numel, offset=located[ref.key]).copy()
    return _materialize_all(records, storage_data, _budget(len(buf)))
