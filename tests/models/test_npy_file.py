"""The safe .npy reader: every plain numeric array np.save writes reads back equal; hostile headers fail at once."""
import struct

import numpy as np
import pytest

from audiograd.models.npy_file import NpyFileError, read_npy

DTYPES = ["<f4", ">f4", "<f8", ">f8", "<f2", "<i8", ">i4", "|i1", "|u1", "<u2", "|b1"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, fortran", [((3, 5), False), ((3, 5), True), ((2, 3, 4), True), ((), False),
                                            ((0, 4), False), ((7,), False)])
def test_np_save_output_reads_back_equal(tmp_path, dtype, shape, fortran):
    values = (np.arange(int(np.prod(shape))) % 7 - 2).reshape(shape).astype(dtype)
    values = np.asfortranarray(values) if fortran else values
    path = tmp_path / "a.npy"
    np.save(path, values)
    ours, theirs = read_npy(path), np.load(path, allow_pickle=False)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype.newbyteorder("=")
    np.testing.assert_array_equal(ours, theirs)
    assert ours.dtype.isnative and ours.flags.c_contiguous


def _npy(header: str, data: bytes = b"", version=(1, 0), length=None) -> bytes:
    text = header.encode("latin1")
    width = "<H" if version[0] == 1 else "<I"
    return b"\x93NUMPY" + bytes(version) + struct.pack(width, len(text) if length is None else length) + text + data


HOSTILE = {
    "terabytes claimed": (_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (%d,), }" % (1 << 40), b"\0" * 16),
                          "data bytes"),
    "shape overflows 64 bits": (
        _npy("{'descr': '<f8', 'fortran_order': False, 'shape': (%d, %d), }" % (1 << 40, 1 << 40)), "64 bits"),
    "negative shape": (_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }"), "non-negative"),
    "object dtype": (_npy("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", b"\0" * 8), "plain numeric"),
    "structured dtype": (_npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", b"\0" * 4),
                         "plain numeric"),
    "complex dtype": (_npy("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", b"\0" * 8), "plain numeric"),
    "unknown dtype": (_npy("{'descr': '<z9', 'fortran_order': False, 'shape': (1,), }", b"\0" * 8), "dtype"),
    "comma dtype": (_npy("{'descr': ',', 'fortran_order': False, 'shape': (1,), }", b"\0" * 8), "dtype"),
    "two-field dtype string": (_npy("{'descr': '<f4,<f4', 'fortran_order': False, 'shape': (1,), }", b"\0" * 8),
                               "plain numeric"),
    "unknown item size": (_npy("{'descr': '<f3', 'fortran_order': False, 'shape': (1,), }", b"\0" * 8), "dtype"),
    "truncated data": (_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", b"\0" * 15), "15 data bytes"),
    "extra data": (_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", b"\0" * 17), "17 data bytes"),
    "header not a dict": (_npy("[1, 2, 3]"), "dict"),
    "header not a literal": (_npy("__import__('os').system('true')"), "literal"),
    "missing key": (_npy("{'descr': '<f4', 'shape': (1,), }", b"\0" * 4), "dict"),
    "fortran_order not bool": (_npy("{'descr': '<f4', 'fortran_order': 1, 'shape': (1,), }", b"\0" * 4), "fortran"),
    "header length past end": (_npy("{'descr': '<f4'", length=60000), "header"),
    "header length 4 GiB": (_npy("{}", version=(2, 0), length=0xFFFFFFFF), "header"),
    "unknown version": (_npy("{}", version=(9, 0)), "version"),
    "no magic": (b"NUMPY\x01\x00" + b"\0" * 20, "magic"),
    "deep nesting": (_npy("(" * 30000 + ")" * 30000, version=(2, 0)), "literal"),
    "header too long": (_npy(" " * 70000, version=(2, 0)), "header claims 70000 bytes"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_npy_is_one_error_naming_the_file(tmp_path, case):
    content, fragment = HOSTILE[case]
    path = tmp_path / "x.npy"
    path.write_bytes(content)
    with pytest.raises(NpyFileError) as info:
        read_npy(path)
    assert str(info.value).startswith(f"{path}: ") and fragment in str(info.value), str(info.value)
