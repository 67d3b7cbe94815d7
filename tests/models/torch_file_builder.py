"""Write PyTorch checkpoints (zip and legacy format) from hand-made tensor records, for hostile-file tests.

``torch.save`` only writes records that fit; these builders write whatever numbers they are
given, in the exact layout torch uses, so that one field at a time can be made wrong. With
fitting numbers the files load in ``torch.load`` (a test checks that), which shows the layout
is torch's own.
"""
import io
import pickle
import struct
import warnings
import zipfile
from collections import OrderedDict

import torch

LEGACY_MAGIC = 0x1950a86a20f9469cfc6c


class Storage:
    """A storage record: ``data`` is written as its bytes; ``numel`` is what the pickle claims."""

    def __init__(self, key, storage_type, data: bytes, numel):
        self.key, self.storage_type, self.data, self.numel = key, storage_type, data, numel


class Record:
    """A tensor record whose __reduce__ is torch's, with arbitrary (possibly wrong) numbers."""

    def __init__(self, storage, offset, size, stride, rebuild=None, extra=(False, OrderedDict())):
        self.args = (storage, offset, size, stride) + tuple(extra)
        self.rebuild = rebuild or torch._utils._rebuild_tensor_v2

    def __reduce__(self):
        return self.rebuild, self.args


class Call:
    """Pickles as a call of ``func`` with ``args`` (any global, any arguments)."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def float_storage(values, key="0", numel=None):
    data = struct.pack(f"<{len(values)}f", *values)
    return Storage(key, torch.FloatStorage, data, len(values) if numel is None else numel)


def _pickle(obj, legacy: bool) -> bytes:
    buf = io.BytesIO()

    class Pickler(pickle.Pickler):
        def persistent_id(self, o):
            if isinstance(o, Storage):
                pid = ("storage", o.storage_type, o.key, "cpu", o.numel)
                return pid + (None,) if legacy else pid
            return None
    Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def _storages(obj, found=None):
    found = {} if found is None else found
    if isinstance(obj, Storage):
        found.setdefault(obj.key, obj)
    elif isinstance(obj, (Record, Call)):
        _storages(obj.args, found)
    elif isinstance(obj, dict):
        for v in obj.values():
            _storages(v, found)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _storages(v, found)
    return found


def write_zip(path, obj, pickle_bytes=None, byteorder=b"little"):
    """A zip-format checkpoint of ``obj`` (a dict of Records); ``pickle_bytes`` replaces data.pkl."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", _pickle(obj, legacy=False) if pickle_bytes is None else pickle_bytes)
        if byteorder is not None:
            z.writestr("archive/byteorder", byteorder)
        for key, s in _storages(obj).items():
            z.writestr(f"archive/data/{key}", s.data)
        z.writestr("archive/version", "3\n")
    return path


def write_legacy(path, obj, pickle_bytes=None, little_endian=True, counts=None):
    """A legacy-format checkpoint of ``obj``; ``counts`` overrides the element counts before each storage."""
    storages = _storages(obj)
    parts = [pickle.dumps(LEGACY_MAGIC, protocol=2), pickle.dumps(1001, protocol=2),
             pickle.dumps({"protocol_version": 1001, "little_endian": little_endian,
                           "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2),
             _pickle(obj, legacy=True) if pickle_bytes is None else pickle_bytes,
             pickle.dumps(list(storages), protocol=2)]
    for i, s in enumerate(storages.values()):
        with warnings.catch_warnings():  # the typed storage classes are deprecated, not gone
            warnings.simplefilter("ignore")
            itemsize = s.storage_type.dtype.itemsize
        count = len(s.data) // itemsize if counts is None else counts[i]
        parts.append(struct.pack("<q", count) + s.data)
    with open(path, "wb") as f:
        f.write(b"".join(parts))
    return path


WRITERS = {"zip": write_zip, "legacy": write_legacy}
