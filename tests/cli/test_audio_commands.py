"""``audiograd encode|decode|reconstruct`` and audiograd.audio, on a tiny model and short files."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from safetensors.numpy import save_file

import audiograd
from audiograd.audio import atomic_output, match_channels, read_audio, resample, write_audio
from audiograd.cli.main import main
from audiograd.models.chunked import encode_chunked
from audiograd.models.oobleck import OobleckVAE
from oobleck_configs import TINY

RATE, RATIO, DIM = 44100, 8, 8
LENGTH = 1602  # 200 latents: the shapes of tests/models/test_chunked.py, so kernels are shared
CHUNK = ["--chunk", "32"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A model_config.json, a SAO-style checkpoint of a random tiny model, and input audio."""
    d = tmp_path_factory.mktemp("audio_cli")
    config = {"model_type": "diffusion_cond", "sample_rate": RATE,
              "model": {"pretransform": {"type": "autoencoder", "config": TINY}}}
    (d / "model_config.json").write_text(json.dumps(config))
    audiograd.manual_seed(3)
    model = OobleckVAE(config)
    save_file({f"pretransform.model.{k}": np.ascontiguousarray(v.numpy()) for k, v in model.state_dict().items()},
              str(d / "model.safetensors"))
    audio = (0.3 * np.random.default_rng(0).standard_normal((2, LENGTH))).astype(np.float32)
    sf.write(d / "stereo.wav", audio.T, RATE, subtype="FLOAT")
    sf.write(d / "mono.flac", audio[0], RATE, subtype="PCM_24")
    sf.write(d / "stereo22k.wav", audio[:, :LENGTH // 2].T, 22050, subtype="FLOAT")
    # a config whose latent_dim (4) differs from the checkpoint's
    narrow = json.loads(json.dumps(config))
    narrow["model"]["pretransform"]["config"]["latent_dim"] = 4
    narrow["model"]["pretransform"]["config"]["encoder"]["config"]["latent_dim"] = 8
    narrow["model"]["pretransform"]["config"]["decoder"]["config"]["latent_dim"] = 4
    (d / "narrow_config.json").write_text(json.dumps(narrow))
    return {"dir": d, "model": model, "audio": audio,
            "args": ["--checkpoint", str(d / "model.safetensors"), "--config", str(d / "model_config.json")]}


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, err


def _rel(a, b):
    return float(np.abs(a - b).max() / np.sqrt(np.mean(b.astype(np.float64) ** 2)))


def test_encode_decode_reconstruct_round_trip(files, tmp_path, capsys):
    model, audio, args = files["model"], files["audio"], files["args"]
    rc, err = _run(capsys, "encode", files["dir"] / "stereo.wav", tmp_path / "z.npy", *args, *CHUNK)
    assert rc == 0, err
    blocks = 7 * len(model.encoder.layers)  # 7 chunks of 32 latents, each through every encoder stage
    assert "encode: 100%" in err and f"{blocks}/{blocks}" in err and "block/s" in err  # the progress bar
    assert f" 0/{blocks}" in err  # shown with its total before the work starts
    z = np.load(tmp_path / "z.npy")
    assert z.shape == (DIM, LENGTH // RATIO) and z.dtype == np.float32
    with audiograd.no_grad():
        assert _rel(z, model.encode(audio[None]).numpy()[0]) < 1e-5

    rc, err = _run(capsys, "decode", tmp_path / "z.npy", tmp_path / "out.wav", *args, *CHUNK)
    assert rc == 0, err
    decoded, sr = read_audio(tmp_path / "out.wav")
    assert sr == RATE and decoded.shape == (2, (LENGTH // RATIO) * RATIO)
    with audiograd.no_grad():
        assert _rel(decoded, model.decode(z[None]).numpy()[0]) < 1e-5

    rc, err = _run(capsys, "reconstruct", files["dir"] / "stereo.wav", tmp_path / "rec.wav", *args, *CHUNK, "-q")
    assert rc == 0 and err == ""
    np.testing.assert_array_equal(read_audio(tmp_path / "rec.wav")[0], decoded)
    assert oct(os.stat(tmp_path / "rec.wav").st_mode & 0o777) == oct(0o666 & ~_umask())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav", "rec.wav", "z.npy"]  # no temp files


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_sampled_latents_are_seeded(files, tmp_path, capsys):
    src = files["dir"] / "stereo.wav"
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        assert _run(capsys, "encode", src, tmp_path / f"{name}.npy", *files["args"], *CHUNK,
                    "--sample", "--seed", seed)[0] == 0
    a, b, c = (np.load(tmp_path / f"{n}.npy") for n in "abc")
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-2


def test_mono_input_is_duplicated_to_stereo(files, tmp_path, capsys):
    rc, err = _run(capsys, "encode", files["dir"] / "mono.flac", tmp_path / "z.npy", *files["args"], *CHUNK)
    assert rc == 0, err
    assert "converting" in err and "from 1 to 2 channels" in err
    mono, _ = read_audio(files["dir"] / "mono.flac")
    expected = encode_chunked(files["model"], np.repeat(mono, 2, axis=0)[None], chunk_samples=32 * RATIO)[0]
    np.testing.assert_allclose(np.load(tmp_path / "z.npy"), expected, atol=1e-6)


def test_22050_hz_input_is_resampled(files, tmp_path, capsys):
    rc, err = _run(capsys, "reconstruct", files["dir"] / "stereo22k.wav", tmp_path / "out.wav",
                   *files["args"], *CHUNK)
    assert rc == 0, err
    assert "resampling" in err and "from 22050 Hz to the model's 44100 Hz" in err
    info = sf.info(tmp_path / "out.wav")
    assert info.samplerate == RATE and info.channels == 2
    assert info.frames == (LENGTH // RATIO) * RATIO


def test_random_weights_need_the_flag(files, tmp_path, capsys):
    src, out = files["dir"] / "stereo.wav", tmp_path / "z.npy"
    rc, err = _run(capsys, "encode", src, out, "--config", files["dir"] / "model_config.json")
    assert rc == 2 and "--checkpoint" in err and not out.exists()
    rc, err = _run(capsys, "encode", src, out, "--config", files["dir"] / "model_config.json",
                   "--random-weights", "-q", *CHUNK)
    assert rc == 0, err
    rc, err = _run(capsys, "encode", src, out, *files["args"], "--random-weights")
    assert rc == 2 and "not both" in err


@pytest.mark.parametrize("case, expected", [
    ("missing_input", "input not found"),
    ("fifo_input", "is not a regular file"),
    ("missing_checkpoint", "checkpoint not found"),
    ("garbage_checkpoint", "garbage.safetensors"),
    ("wrong_config", "does --config match"),
    ("bad_config", "not a JSON config"),
    ("bad_audio", "not a readable audio file"),
    ("missing_dir", "output directory does not exist"),
    ("bad_extension", "unknown audio file extension"),
])
def test_errors_are_one_line_with_status_2(files, tmp_path, capsys, case, expected):
    d = files["dir"]
    (tmp_path / "garbage.safetensors").write_bytes(b"\x00" * 64)
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "bad.wav").write_text("not audio")
    ckpt, config = d / "model.safetensors", d / "model_config.json"
    src, out, cmd = d / "stereo.wav", tmp_path / "out.wav", "reconstruct"
    weights = ["--checkpoint", ckpt, "--config", config]
    if case == "missing_input":
        src = tmp_path / "nope.wav"
    elif case == "fifo_input":
        src = tmp_path / "pipe.wav"
        os.mkfifo(src)
    elif case == "missing_checkpoint":
        weights[1] = tmp_path / "nope.safetensors"
    elif case == "garbage_checkpoint":
        weights[1] = tmp_path / "garbage.safetensors"
    elif case == "wrong_config":
        weights[3] = d / "narrow_config.json"
    elif case == "bad_config":
        weights[3] = tmp_path / "bad.json"
    elif case == "bad_audio":
        src = tmp_path / "bad.wav"
    elif case == "missing_dir":
        out = tmp_path / "no" / "out.wav"
    elif case == "bad_extension":
        out = tmp_path / "out.xyz"
    rc, err = _run(capsys, cmd, src, out, *weights, *CHUNK)
    assert rc == 2
    assert err.startswith(f"audiograd {cmd}: error: ") and expected in err, err
    assert err.count("\n") == 1 and len(err) < 500
    assert not out.exists()


def test_bad_latents_leave_existing_output_untouched(files, tmp_path, capsys):
    out = tmp_path / "out.wav"
    out.write_bytes(b"previous result")
    bad = {"shape.npy": np.zeros((DIM + 1, 10), np.float32), "nan.npy": np.full((DIM, 10), np.nan, np.float32)}
    for name, arr in bad.items():
        np.save(tmp_path / name, arr)
    (tmp_path / "text.npy").write_text("not numpy")
    for name, expected in (("shape.npy", "latents shaped (9, 10), expected (8, frames)"),
                           ("nan.npy", "finite"), ("text.npy", "not a .npy file")):
        rc, err = _run(capsys, "decode", tmp_path / name, out, *files["args"])
        assert rc == 2 and expected in err, err
    assert out.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.npy", "out.wav", "shape.npy", "text.npy"]


def test_error_exit_from_the_installed_command_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "audiograd", "decode", str(tmp_path / "missing.npy"),
                           str(tmp_path / "out.wav"), "--random-weights"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"audiograd decode: error: input not found: {tmp_path / 'missing.npy'}"


def test_write_audio_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "x.wav"
    write_audio(target, np.zeros((2, 100), np.float32), RATE)
    before = target.read_bytes()

    def broken_write(path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"RIFF partial")
        raise RuntimeError("disk full")
    monkeypatch.setattr(sf, "write", broken_write)
    with pytest.raises(ValueError, match="x.wav: cannot write audio"):
        write_audio(target, np.ones((2, 100), np.float32), RATE)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]
    with pytest.raises(KeyError):
        with atomic_output(tmp_path / "y.npy") as tmp:
            tmp.write_bytes(b"half")
            raise KeyError("interrupted")
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]


def test_audio_helpers(tmp_path):
    stereo = np.stack([np.ones(10), -np.ones(10) * 0.5]).astype(np.float32)
    np.testing.assert_allclose(match_channels(stereo, 1), np.full((1, 10), 0.25))
    assert match_channels(stereo[:1], 2).shape == (2, 10)
    with pytest.raises(ValueError, match="3 channels to 2 channels"):
        match_channels(np.zeros((3, 10), np.float32), 2)
    tone = np.sin(2 * np.pi * 440 * np.arange(22050) / 22050).astype(np.float32)[None]
    up = resample(tone, 22050, 44100)
    assert up.shape == (1, 44100) and up.dtype == np.float32
    t = np.arange(44100) / 44100
    assert np.abs(up[0, 1000:-1000] - np.sin(2 * np.pi * 440 * t[1000:-1000])).max() < 1e-3
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        read_audio(tmp_path / "nope.wav")
    write_audio(tmp_path / "a.flac", tone, 22050)
    back, sr = read_audio(tmp_path / "a.flac")
    assert sr == 22050 and back.shape == (1, 22050) and np.abs(back - tone).max() < 1e-4


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if the command gets as far as loading the model."""
    def refuse(args):
        raise AssertionError("the model was loaded before the inputs and outputs were checked")
    monkeypatch.setattr("audiograd.cli.audio_commands.load_model", refuse)


def _rate_patched(path, rate):
    data = bytearray(path.read_bytes())
    fmt = data.index(b"fmt ") + 8
    data[fmt + 4:fmt + 8] = int(rate).to_bytes(4, "little")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("case, expected", [
    ("nan", "sample 700 of channel 1 (at 0.015873 s) is nan"),
    ("inf", "sample 0 of channel 0 (at 0.000000 s) is inf"),
    ("rate_1hz", "sample rate 1 Hz is outside the supported range"),
    ("rate_10mhz", "sample rate 10000000 Hz is outside the supported range"),
    ("empty", "holds no audio samples"),
    ("many_channels", "300 channels"),
])
@pytest.mark.parametrize("cmd", ["encode", "reconstruct"])
def test_bad_input_audio_is_refused_before_the_model_loads(files, tmp_path, capsys, no_model, case, expected, cmd):
    src = tmp_path / "in.wav"
    audio = files["audio"].copy()
    if case == "nan":
        audio[1, 700] = np.nan
    elif case == "inf":
        audio[0, 0] = np.inf
    elif case == "empty":
        audio = audio[:, :0]
    elif case == "many_channels":
        audio = np.zeros((300, 10), np.float32)
    sf.write(src, audio.T, RATE, subtype="FLOAT")
    if case.startswith("rate_"):
        _rate_patched(src, {"rate_1hz": 1, "rate_10mhz": 10_000_000}[case])
    out = tmp_path / ("out.npy" if cmd == "encode" else "out.wav")
    rc, err = _run(capsys, cmd, src, out, "--random-weights", *CHUNK)
    assert rc == 2 and err == f"audiograd {cmd}: error: {src}: " + err.split(f"{src}: ", 1)[1]
    assert expected in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


@pytest.mark.parametrize("kind", ["fifo", "device", "directory", "socket", "unwritable", "extension"])
@pytest.mark.parametrize("cmd", ["encode", "decode", "reconstruct"])
def test_bad_outputs_are_refused_before_the_model_loads(files, tmp_path, capsys, no_model, kind, cmd):
    import socket
    src = files["dir"] / "stereo.wav"
    if cmd == "decode":
        src = tmp_path / "z.npy"
        np.save(src, np.zeros((DIM, 10), np.float32))
    name = "out.npy" if cmd == "encode" else "out.wav"
    out, expected, sock = tmp_path / name, None, None
    if kind == "fifo":
        os.mkfifo(out)
        expected = "is a FIFO"
    elif kind == "device":
        out, expected = "/dev/null", "is a character device"
    elif kind == "directory":
        out.mkdir()
        expected = "is a directory"
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(out))
        expected = "is a socket"
    elif kind == "unwritable":
        out, expected = f"/proc/{name}", "directory /proc is not writable"
    else:
        out = tmp_path / "out.txt"
        expected = "latents are written as .npy" if cmd == "encode" else "unknown audio file extension"
    before = sorted(os.listdir(tmp_path))
    try:
        rc, err = _run(capsys, cmd, src, out, "--random-weights", *CHUNK)
    finally:
        if sock is not None:
            sock.close()
    assert rc == 2 and err.startswith(f"audiograd {cmd}: error: ") and expected in err and str(out) in err, err
    assert err.count("\n") == 1
    assert sorted(os.listdir(tmp_path)) == before
    if kind == "device":
        assert os.path.exists("/dev/null") and os.stat("/dev/null").st_rdev != 0


def test_truncated_input_is_encoded_with_a_warning_even_when_quiet(files, tmp_path, capsys):
    src = tmp_path / "cut.wav"
    data = (files["dir"] / "stereo.wav").read_bytes()
    src.write_bytes(data[:len(data) - 832])  # 104 stereo float frames missing (the same chunk shapes)
    rc, err = _run(capsys, "encode", src, tmp_path / "z.npy", *files["args"], *CHUNK, "-q")
    assert rc == 0
    assert err == (f"warning: {src}: the file is shorter than its header says: {LENGTH} frames expected, "
                   f"{LENGTH - 104} read ({104 / RATE:.3f} s missing); using the frames that are there\n")
    assert np.load(tmp_path / "z.npy").shape == (DIM, (LENGTH - 104) // RATIO)
