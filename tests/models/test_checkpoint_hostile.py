"""Checkpoint files whose records do not fit their data: each class of lie gives one CheckpointError naming the file.

Valid files come from torch.save (zip and legacy format) and must load exactly equal to torch's
own values; hostile ones are written by ``torch_file_builder`` with one field wrong at a time.
"""
import pickle
import struct
import warnings
from collections import OrderedDict

import numpy as np
import pytest
import torch

from audiograd.models.checkpoint import CheckpointError, load_state
from torch_file_builder import WRITERS, Call, Record, Storage, float_storage

warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*")
FORMATS = ["zip", "legacy"]


def _valid_state():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    return {
        "fp32": torch.randn(3, 5), "fp16": torch.randn(4).half(), "bf16": torch.randn(2, 3).bfloat16(),
        "int64": torch.arange(-3, 7), "bool": torch.tensor([True, False, True]),
        "transposed": base.t(), "strided": base[1:, ::2], "offset": base[2], "shared_a": base, "shared_b": base[3:],
        "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 7), "param": torch.nn.Parameter(torch.ones(2, 2)),
        "expanded": torch.ones(1, 3).expand(4, 3), "step": 7, "name": "model",
    }


def _save(tmp_path, fmt, obj):
    path = tmp_path / f"model-{fmt}.ckpt"
    torch.save(obj, path, _use_new_zipfile_serialization=(fmt == "zip"))
    return path


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("wrap", ["plain", "lightning"])
def test_torch_save_output_loads_exactly(tmp_path, fmt, wrap):
    state = _valid_state()
    path = _save(tmp_path, fmt, state if wrap == "plain" else {"state_dict": state, "epoch": 3, "hp": {"lr": 1e-3}})
    ours = load_state(path)
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    assert set(ours) == set(tensors)
    for key, value in tensors.items():
        expected = value.detach().float().numpy() if value.dtype == torch.bfloat16 else value.detach().numpy()
        assert ours[key].dtype == expected.dtype and ours[key].shape == expected.shape, key
        np.testing.assert_array_equal(ours[key], expected, err_msg=key)


@pytest.mark.parametrize("fmt", FORMATS)
def test_hand_built_records_are_torchs_layout(tmp_path, fmt):
    """The builder's files (used for the hostile cases below) load in torch.load exactly as in ours."""
    storage = float_storage([float(i) for i in range(12)])
    obj = {"w": Record(storage, 2, (2, 3), (1, 2)), "v": Record(storage, 0, (12,), (1,))}
    path = WRITERS[fmt](tmp_path / "built.ckpt", obj)
    theirs = torch.load(path, weights_only=True)
    ours = load_state(path)
    for key in obj:
        np.testing.assert_array_equal(ours[key], theirs[key].numpy())


def _expect_error(path, *fragments):
    with pytest.raises(CheckpointError) as info:
        load_state(path)
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg and "Traceback" not in msg
    for fragment in fragments:
        assert fragment in msg, msg
    return msg


_S = float_storage([1.0] * 12)
HOSTILE_RECORDS = {  # case: (record, a fragment the error must contain)
    "negative size": (Record(_S, 0, (-1, 3), (3, 1)), "size[0] is negative"),
    "negative stride": (Record(_S, 6, (2, 3), (-3, 1)), "stride[0] is negative"),
    "stride count": (Record(_S, 0, (2, 3), (1,)), "2 sizes but 1 strides"),
    "negative offset": (Record(_S, -4, (2,), (1,)), "offset is negative"),
    "offset past end": (Record(_S, 11, (2,), (1,)), "reach element 12"),
    "extent past end": (Record(_S, 0, (4, 4), (4, 1)), "reach element 15"),
    "stride past end": (Record(_S, 0, (2,), (1 << 40,)), "storage holds 12"),
    "size not int": (Record(_S, 0, (2.0, 3), (3, 1)), "size[0] is a float"),
    "size is bool": (Record(_S, 0, (True,), (1,)), "size[0] is a bool"),
    "size list": (Record(_S, 0, [2, 3], [3, 1]), "must be tuples"),
    "offset 2**64": (Record(_S, 1 << 64, (1,), (1,)), "64 bits"),
    "numel overflows 64 bits": (Record(_S, 0, (1 << 40, 1 << 40), (0, 0)), "64 bits"),
    "zero-stride bomb": (Record(_S, 0, (1 << 20, 1 << 20), (0, 0)), "overlapping strides"),
    "storage numel beyond bytes": (Record(float_storage([1.0] * 4, "1", numel=1000), 0, (1000,), (1,)),
                                   "1 holds"),
    "storage numel 2**62": (Record(float_storage([1.0] * 4, "1", numel=1 << 62), 0, (4,), (1,)), "64-bit"),
    "storage numel negative": (Record(float_storage([1.0] * 4, "1", numel=-4), 0, (4,), (1,)), "negative"),
    "storage described twice": (Record(float_storage([1.0] * 4, "0", numel=4), 0, (4,), (1,)), "twice"),
    "unknown storage type": (Record(Storage("1", torch.ComplexFloatStorage, b"\0" * 16, 2), 0, (2,), (1,)),
                             "torch.ComplexFloatStorage"),
    "storage not a storage": (Record(5, 0, (2,), (1,)), "not a storage"),
    "too few arguments": (Record(_S, 0, (2,), (1,), extra=()), "4 argument(s)"),
    "too many arguments": (Record(_S, 0, (2,), (1,), extra=(False, OrderedDict(), None, 1, 2)), "9 argument(s)"),
    "forbidden global": (Call(print, ("hello",)), "print"),
    "forbidden rebuild": (Record(_S, 0, (2,), (1,), rebuild=torch._utils._rebuild_qtensor), "_rebuild_qtensor"),
    "parameter of non-tensor": (Call(torch._utils._rebuild_parameter, (3, False, OrderedDict())), "not a tensor"),
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", sorted(HOSTILE_RECORDS))
def test_hostile_tensor_record_is_refused(tmp_path, fmt, case):
    record, fragment = HOSTILE_RECORDS[case]
    path = WRITERS[fmt](tmp_path / "bad.ckpt", {"ok": Record(_S, 0, (12,), (1,)), "bad": record})
    _expect_error(path, fragment)


def _pickle_edits():
    good = pickle.dumps({"k": 1, "s": "x"}, protocol=2)
    return {
        "truncated": good[:-4],
        "bad opcode": good[:2] + b"\xff" + good[3:],
        "no STOP": good[:-1],
        "memo get never put": b"\x80\x02h\x07.",
        "stack underflow": b"\x80\x02s.",
        "SETITEMS on a list": b"\x80\x02](K\x01K\x02u.",
        "REDUCE of a non-callable": b"\x80\x02K\x01)R.",
        "REDUCE with non-tuple args": b"\x80\x02ccollections\nOrderedDict\nK\x01R.",
        "huge LONG4": b"\x80\x02\x8b" + struct.pack("<i", 1 << 20) + b"\x01" * (1 << 20) + b".",
        "string length past end": b"\x80\x02X" + struct.pack("<I", 0xFFFFFFF0) + b"ab.",
        "BINBYTES8 claims exabytes": b"\x80\x04\x8e" + struct.pack("<Q", 1 << 62) + b".",
        "unhashable key": b"\x80\x02}(]K\x01u.",
        "deep nesting": b"\x80\x02" + b"]" * 200000 + b"a" * 199999 + b".",
        "persistent id not a storage": b"\x80\x02}X\x01\x00\x00\x00kK\x05Qs.",
        "persistent id wrong arity": b"\x80\x02}X\x01\x00\x00\x00k(X\x07\x00\x00\x00storaget\x85Qs.",
        "not a dict": pickle.dumps([1, 2, 3], protocol=2),
        "os.system": b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R.",
        "empty": b"",
    }


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", sorted(_pickle_edits()))
def test_malformed_pickle_is_refused(tmp_path, fmt, case):
    path = WRITERS[fmt](tmp_path / "bad.ckpt", {}, pickle_bytes=_pickle_edits()[case])
    _expect_error(path)


def test_zip_entry_claiming_more_bytes_than_the_file_is_refused(tmp_path):
    path = WRITERS["zip"](tmp_path / "bad.ckpt", {"w": Record(float_storage([1.0] * 4), 0, (4,), (1,))})
    raw = bytearray(path.read_bytes())
    name = b"archive/data/0"
    central = raw.rfind(b"PK\x01\x02", 0, raw.rfind(name))  # central directory record of that entry
    for field in (20, 24):  # compressed and uncompressed size
        struct.pack_into("<I", raw, central + field, 0xFFFFFFF0)
    path.write_bytes(bytes(raw))
    _expect_error(path)


@pytest.mark.parametrize("order", [b"middle", b""])
def test_zip_with_unknown_byteorder_is_refused(tmp_path, order):
    path = WRITERS["zip"](tmp_path / "bad.ckpt", {"w": Record(_S, 0, (12,), (1,))}, byteorder=order)
    _expect_error(path, "byteorder")


def test_zip_big_endian_storage_is_converted(tmp_path):
    values = [1.5, -2.0, 3.25]
    storage = Storage("0", torch.FloatStorage, struct.pack(">3f", *values), 3)
    path = WRITERS["zip"](tmp_path / "be.ckpt", {"w": Record(storage, 0, (3,), (1,))}, byteorder=b"big")
    np.testing.assert_array_equal(load_state(path)["w"], np.array(values, dtype=np.float32))


def test_legacy_big_endian_sys_info_is_refused(tmp_path):
    path = WRITERS["legacy"](tmp_path / "be.ckpt", {"w": Record(_S, 0, (12,), (1,))}, little_endian=False)
    _expect_error(path, "big-endian")


@pytest.mark.parametrize("count", [0, 11, 13, -1, 1 << 62])
def test_legacy_storage_count_disagreeing_with_record_is_refused(tmp_path, count):
    path = WRITERS["legacy"](tmp_path / "bad.ckpt", {"w": Record(_S, 0, (12,), (1,))}, counts=[count])
    _expect_error(path, "storage 0")


@pytest.mark.parametrize("cut", [1, 8, 30])
def test_legacy_truncated_storage_is_refused(tmp_path, cut):
    path = WRITERS["legacy"](tmp_path / "bad.ckpt", {"w": Record(_S, 0, (12,), (1,))})
    path.write_bytes(path.read_bytes()[:-cut])
    _expect_error(path)


@pytest.mark.parametrize("fmt", FORMATS + ["safetensors"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nonfinite_weights_are_named(tmp_path, fmt, bad):
    state = {"fine": torch.ones(3), "broken.weight": torch.tensor([1.0, bad]), "also.bias": torch.tensor([bad])}
    if fmt == "safetensors":
        from safetensors.torch import save_file
        path = tmp_path / "w.safetensors"
        save_file(state, str(path))
    else:
        path = _save(tmp_path, fmt, state)
    _expect_error(path, "broken.weight", "also.bias", "allow_nonfinite")
    loaded = load_state(path, allow_nonfinite=True)
    np.testing.assert_array_equal(loaded["broken.weight"], state["broken.weight"].numpy())


def test_safetensors_bf16_widens_to_float32_exactly(tmp_path):
    from safetensors.torch import save_file
    state = {"w": torch.randn(5, 3).bfloat16(), "i": torch.arange(4, dtype=torch.int32)}
    save_file(state, str(tmp_path / "w.safetensors"))
    ours = load_state(tmp_path / "w.safetensors")
    np.testing.assert_array_equal(ours["w"], state["w"].float().numpy())
    np.testing.assert_array_equal(ours["i"], state["i"].numpy())


@pytest.mark.parametrize("first_byte", [0x80, 0x50])
def test_safetensors_whose_header_length_starts_like_a_pickle_or_zip_loads(tmp_path, first_byte):
    """The header length's first byte is arbitrary: 0x80 (a pickle's opcode) or "P" must still read as safetensors."""
    from safetensors.torch import save_file
    state = {"w": torch.randn(3, 4)}
    save_file(state, str(tmp_path / "probe.safetensors"), metadata={"pad": ""})
    base = (tmp_path / "probe.safetensors").read_bytes()[0]
    # grow the metadata until the header length's low byte is the one wanted (8-byte aligned lengths)
    pad = ""
    while True:
        save_file(state, str(tmp_path / "w.safetensors"), metadata={"pad": pad})
        if (tmp_path / "w.safetensors").read_bytes()[0] == first_byte:
            break
        pad += "x"
        assert len(pad) < 600, f"no header length with low byte {first_byte:#x} (started at {base:#x})"
    np.testing.assert_array_equal(load_state(tmp_path / "w.safetensors")["w"], state["w"].numpy())


def _safetensors(header: dict, data: bytes, length=None) -> bytes:
    text = __import__("json").dumps(header).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + data


HOSTILE_SAFETENSORS = {
    "F8 dtype": ({"w": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}}, b"\0" * 4, None),
    "unknown dtype": ({"w": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, None),
    "header length past end": ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, 1 << 40),
    "header length 2**64-1": ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4,
                              2 ** 64 - 1),
    "huge shape": ({"w": {"dtype": "F32", "shape": [1 << 40, 1 << 40], "data_offsets": [0, 4]}}, b"\0" * 4, None),
    "negative shape": ({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, None),
    "offsets past data": ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 4, None),
    "offsets reversed": ({"w": {"dtype": "F32", "shape": [0], "data_offsets": [4, 0]}}, b"\0" * 4, None),
    "size disagrees with shape": ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 8, None),
    "entry not an object": ({"w": [1, 2]}, b"", None),
    "overlapping tensors": ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                             "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12, None),
    "header not an object": ([1, 2], b"", None),
    "metadata not strings": ({"__metadata__": {"a": 1}}, b"", None),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_SAFETENSORS))
def test_hostile_safetensors_is_refused(tmp_path, case):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(_safetensors(*HOSTILE_SAFETENSORS[case]))
    _expect_error(path)
