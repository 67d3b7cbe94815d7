"""Malformed checkpoints (encode) and latent files (decode) end in one line naming the file, exit status 2."""
import json
import struct
import zipfile

import numpy as np
import pytest
import soundfile as sf
import torch

from audiograd.cli.main import main
from oobleck_configs import TINY

RATE = 44100


def _rewrite_zip(src, dst, edit):
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as new:
        for info in old.infolist():
            new.writestr(info.filename, edit(info.filename, old.read(info)))


def _checkpoint(tmp_path, case):
    state = {"encoder.w": torch.randn(4, 3), "decoder.b": torch.randn(5)}
    good = tmp_path / "good.ckpt"
    torch.save(state, good)
    path = tmp_path / f"{case}.ckpt"
    if case == "forbidden_global":
        _rewrite_zip(good, path, lambda name, body: b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R."
                     if name.endswith("data.pkl") else body)
    elif case == "short_storage":
        _rewrite_zip(good, path, lambda name, body: body[:-4] if name.endswith("data/0") else body)
    elif case == "truncated_legacy":
        torch.save(state, path, _use_new_zipfile_serialization=False)
        path.write_bytes(path.read_bytes()[:-7])
    elif case == "safetensors_header_overflow":
        path = tmp_path / f"{case}.safetensors"
        path.write_bytes(struct.pack("<Q", 2 ** 64 - 1) + b'{"w": {}}')
    elif case == "nan_weights":
        state["decoder.b"][2] = float("nan")
        torch.save(state, path)
    return path


def _npy(tmp_path, case):
    path = tmp_path / f"{case}.npy"
    if case == "terabytes":
        header = "{'descr': '<f4', 'fortran_order': False, 'shape': (8, %d), }" % (1 << 40)
        path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * 64)
    elif case == "object_dtype":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif case == "truncated":
        np.save(path, np.zeros((8, 10), np.float32))
        path.write_bytes(path.read_bytes()[:-5])
    return path


@pytest.fixture
def inputs(tmp_path):
    config = {"model_type": "diffusion_cond", "sample_rate": RATE,
              "model": {"pretransform": {"type": "autoencoder", "config": TINY}}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    sf.write(tmp_path / "in.wav", np.zeros((64, 2), np.float32), RATE, subtype="FLOAT")
    return tmp_path


def _one_error_line(capsys, command, bad_file):
    out, err = capsys.readouterr()
    assert err.startswith(f"audiograd {command}: error: {bad_file}: "), err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("case", ["forbidden_global", "short_storage", "truncated_legacy",
                                  "safetensors_header_overflow", "nan_weights"])
def test_encode_with_malformed_checkpoint(inputs, capsys, case):
    bad = _checkpoint(inputs, case)
    out = inputs / "z.npy"
    rc = main(["encode", str(inputs / "in.wav"), str(out), "--checkpoint", str(bad),
               "--config", str(inputs / "config.json"), "-q"])
    assert rc == 2
    _one_error_line(capsys, "encode", bad)
    assert not out.exists()


@pytest.mark.parametrize("case", ["terabytes", "object_dtype", "truncated"])
def test_decode_with_malformed_latents(inputs, capsys, case):
    bad = _npy(inputs, case)
    out = inputs / "y.wav"
    rc = main(["decode", str(bad), str(out), "--random-weights", "--config", str(inputs / "config.json"), "-q"])
    assert rc == 2
    _one_error_line(capsys, "decode", bad)
    assert not out.exists()
