"""Mutate valid weight files and load them in a child process: every case must load or give one clean error.

Seed files (safetensors, PyTorch zip, legacy PyTorch, .npy) are written by the parent; the
child (``python checkpoint_fuzz.py SEED_DIR FORMAT SEED START COUNT WORK_DIR``) rebuilds case i
from ``random.Random((seed, format, i))``, so any case can be replayed alone. The child prints
``start i`` before each case and one JSON line after it; a case after which no JSON line comes
(a segfault, an abort, a kill) is a crash.
"""
import json
import os
import random
import struct
import sys
import traceback
import zipfile
from io import BytesIO
from pathlib import Path

FORMATS = {"safetensors": ".safetensors", "zip": ".ckpt", "legacy": ".pt", "npy": ".npy"}
INTERESTING = [0, 1, -1, 2, 255, 256, 65535, 2 ** 31 - 1, -2 ** 31, 2 ** 32, 2 ** 62, 2 ** 63 - 1, 2 ** 63,
               -2 ** 63, 2 ** 64 - 1, 2 ** 64, 10 ** 12, -(10 ** 12)]


def write_seed_files(directory: Path) -> None:
    """A few valid files per format (views, offsets, bf16, shared storages, empty and 0-d tensors)."""
    import numpy as np
    import torch
    from safetensors.torch import save_file
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    states = [{"a": torch.randn(3, 4), "b": torch.arange(5), "c": torch.randn(2, 2).half()},
              {"w": base.t(), "v": base[1:, ::2], "s": torch.tensor(1.5), "e": torch.zeros(0, 3),
               "h": torch.randn(3).bfloat16(), "shared": base}]
    for i, state in enumerate(states):
        torch.save(state, directory / f"seed{i}.ckpt")
        torch.save({"state_dict": state, "epoch": 2}, directory / f"seed{i}.pt", _use_new_zipfile_serialization=False)
        save_file({k: v.contiguous() for k, v in state.items()}, str(directory / f"seed{i}.safetensors"))
    np.save(directory / "seed0.npy", np.random.default_rng(0).standard_normal((8, 5)).astype(np.float32))
    np.save(directory / "seed1.npy", np.asfortranarray(np.arange(12, dtype=">i4").reshape(3, 4)))


def _int_bytes(rng: random.Random) -> bytes:
    value, width = rng.choice(INTERESTING), rng.choice([1, 2, 4, 8])
    return (value % (1 << (8 * width))).to_bytes(width, rng.choice(["little", "big"]))


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """One format-blind mutation: bit flips, truncation, insertion, deletion or an interesting integer."""
    buf = bytearray(data)
    kind = rng.randrange(6)
    if kind == 0 or not buf:
        for _ in range(rng.randint(1, 8)):
            if buf:
                buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
    elif kind == 1:
        del buf[rng.randrange(len(buf)):]
    elif kind == 2:
        at = rng.randrange(len(buf) + 1)
        buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif kind == 3:
        at = rng.randrange(len(buf))
        del buf[at:at + rng.randint(1, 16)]
    else:
        chunk = _int_bytes(rng)
        at = rng.randrange(len(buf))
        buf[at:at + len(chunk)] = chunk
    return bytes(buf)


def _interesting_value(rng: random.Random):
    return rng.choice(INTERESTING + [1.5, "7", None, [], [1, 2], True, -0.0])


def mutate_pickle(data: bytes, rng: random.Random) -> bytes:
    """Replace, drop or duplicate one opcode of a valid pickle, or give one integer opcode an interesting value."""
    import pickletools
    ops = [(op, arg, pos) for op, arg, pos in pickletools.genops(data)]
    ends = [pos for _, _, pos in ops[1:]] + [len(data)]
    i = rng.randrange(len(ops))
    op, arg, pos = ops[i]
    head, tail = data[:pos], data[ends[i]:]
    kind = rng.randrange(4)
    if kind == 0 or op.name in ("BININT1", "BININT2", "BININT", "LONG1"):
        value = rng.choice(INTERESTING)
        raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
        return head + b"\x8a" + bytes([len(raw)]) + raw + tail
    if kind == 1:
        return head + bytes([rng.randrange(256)]) + data[pos + 1:]
    if kind == 2:
        return head + tail
    if op.name == "GLOBAL":
        name = rng.choice(["torch HalfStorage", "torch LongStorage", "torch BFloat16Storage", "os system",
                           "torch._utils _rebuild_parameter", "collections OrderedDict", "builtins eval"])
        return head + b"c" + name.replace(" ", "\n").encode() + b"\n" + tail
    return head + data[pos:ends[i]] + data[pos:]


def mutate_safetensors(data: bytes, rng: random.Random) -> bytes:
    """Edit one field of the JSON header (shape, offsets, dtype) or lie about the header length."""
    (n,) = struct.unpack_from("<Q", data)
    header, body = json.loads(data[8:8 + n]), data[8 + n:]
    names = [k for k in header if k != "__metadata__"]
    entry = header[rng.choice(names)]
    field = rng.choice(["shape", "data_offsets", "dtype", "length"])
    if field == "dtype":
        entry["dtype"] = rng.choice(["BF16", "F16", "F64", "I8", "BOOL", "F8_E4M3", "F8_E5M2", "C64", "", 7])
    elif field == "length":
        text = json.dumps(header).encode()
        return struct.pack("<Q", rng.choice(INTERESTING) % (1 << 64)) + text + body
    elif entry[field]:
        entry[field][rng.randrange(len(entry[field]))] = _interesting_value(rng)
    else:
        entry[field] = [_interesting_value(rng)]
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


def mutate_npy(data: bytes, rng: random.Random) -> bytes:
    """Edit the header dict (shape, descr, fortran_order) or lie about the header length."""
    (n,) = struct.unpack_from("<H", data, 8)
    header, body = data[10:10 + n].decode("latin1"), data[10 + n:]
    kind = rng.randrange(4)
    if kind == 0:
        header = header.replace("'shape': (", f"'shape': ({rng.choice(INTERESTING)}, ", 1)
    elif kind == 1:
        descr = rng.choice(["<f2", ">f8", "|O", "<c8", "|V4", "<M8", "|b1", "<U3", "<f4"])
        header = header.split("'descr': '")[0] + f"'descr': '{descr}'" + header.split("'descr': '")[1].split("'", 1)[1]
    elif kind == 2:
        header = header.replace("False", "True") if "False" in header else header.replace("True", "False")
    else:
        return data[:8] + struct.pack("<H", rng.choice(INTERESTING) % 65536) + data[10:]
    text = header.encode("latin1")
    return data[:8] + struct.pack("<H", len(text)) + text + body


def _rezip(data: bytes, rng: random.Random) -> bytes:
    """Mutate one entry of a zip checkpoint (the pickle pickle-aware, other entries blind) and re-zip it."""
    src = zipfile.ZipFile(BytesIO(data))
    infos = src.infolist()
    target = rng.choice(infos)
    out = BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in infos:
            body = src.read(info)
            if info is target:
                body = mutate_pickle(body, rng) if info.filename.endswith("data.pkl") else mutate_bytes(body, rng)
            dst.writestr(info.filename, body)
    return out.getvalue()


def _legacy_pickle_mutation(data: bytes, rng: random.Random) -> bytes:
    """Mutate one of the five pickles at the head of a legacy checkpoint."""
    import pickletools
    starts, pos = [], 0
    for _ in range(5):
        starts.append(pos)
        for op, _, at in pickletools.genops(BytesIO(data[pos:])):
            if op.name == "STOP":
                end = pos + at + 1
        pos = end
    which = rng.randrange(5)
    begin, end = starts[which], (starts[which + 1] if which < 4 else pos)
    return data[:begin] + mutate_pickle(data[begin:end], rng) + data[end:]


def mutate(data: bytes, fmt: str, rng: random.Random) -> bytes:
    """One mutation of a valid ``fmt`` file: half format-aware, half blind; sometimes two stacked."""
    aware = {"safetensors": mutate_safetensors, "npy": mutate_npy, "zip": _rezip, "legacy": _legacy_pickle_mutation}
    for _ in range(1 if rng.random() < 0.8 else 2):
        try:
            data = aware[fmt](data, rng) if rng.random() < 0.5 else mutate_bytes(data, rng)
        except Exception:  # an earlier mutation left nothing the format-aware one can parse
            data = mutate_bytes(data, rng)
    return data


def _load(path: Path, fmt: str):
    if fmt == "npy":
        from audiograd.models.npy_file import NpyFileError, read_npy
        return {"array": read_npy(path)}, NpyFileError
    from audiograd.models.checkpoint import CheckpointError, load_state
    return load_state(path), CheckpointError


def run_case(path: Path, fmt: str) -> dict:
    """Load ``path``; the outcome is 'load', 'error' (the format's error, naming the file) or 'bad'."""
    from audiograd.models.checkpoint import CheckpointError
    from audiograd.models.npy_file import NpyFileError
    expected = NpyFileError if fmt == "npy" else CheckpointError
    try:
        arrays, _ = _load(path, fmt)
    except expected as e:
        msg = str(e)
        if not msg.startswith(f"{path}: ") or "\n" in msg or "more memory" in msg:
            return {"outcome": "bad", "detail": msg[:300]}
        return {"outcome": "error"}
    except BaseException as e:  # the finding this fuzzer exists for
        return {"outcome": "bad", "detail": "".join(traceback.format_exception_only(type(e), e))[:300]}
    import numpy as np
    for value in arrays.values():
        if not isinstance(value, np.ndarray) or not all(isinstance(n, int) and n >= 0 for n in value.shape):
            return {"outcome": "bad", "detail": f"returned {type(value).__name__} shaped {getattr(value, 'shape', '')}"}
    return {"outcome": "load"}


def _worker(seed_dir: str, fmt: str, seed: int, start: int, count: int, work_dir: str) -> None:
    import resource
    limit = 3 << 30  # a file that makes the reader allocate gigabytes is a finding, not a reason to swap
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    seeds = sorted(Path(seed_dir).glob(f"seed*{FORMATS[fmt]}"))
    originals = [p.read_bytes() for p in seeds]
    for i in range(start, start + count):
        rng = random.Random(f"{seed}-{fmt}-{i}")
        data = mutate(rng.choice(originals), fmt, rng)
        path = Path(work_dir) / f"case{i}{FORMATS[fmt]}"
        path.write_bytes(data)
        print(f"start {i}", flush=True)
        result = run_case(path, fmt)
        print(json.dumps({"case": i, **result}), flush=True)
        path.unlink()


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    _worker(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
