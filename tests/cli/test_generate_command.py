"""``audiograd generate``: a tiny random-weight model end to end, and its one-line errors."""
from __future__ import annotations

import json
import numpy as np
import pytest
import soundfile as sf

from audiograd.cli.main import main
from sao_configs import tiny_config


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("generate") / "model_config.json"
    path.write_text(json.dumps(tiny_config("sao-small")))
    return path


def test_random_weights_write_trimmed_audio(config, tmp_path, capsys):
    out = tmp_path / "out.wav"
    rc = main(["generate", "rain on a tin roof", str(out), "--random-weights", "--config", str(config),
               "--seconds", "0.003", "--steps", "2", "--seed", "5"])
    assert rc == 0
    audio, rate = sf.read(out, always_2d=True)
    assert rate == 44100 and audio.shape == (132, 2) and np.isfinite(audio).all()
    assert "real-time factor" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    ([], "--checkpoint and --config needed"),
    (["--random-weights", "--sampler", "dpmpp-3m-sde"], "not one for this model"),
    (["--random-weights", "--seconds", "60"], "exceed the generated window"),
])
def test_errors_are_one_line(config, tmp_path, capsys, argv, message):
    extra = ["--config", str(config)] if "--random-weights" in argv else []
    rc = main(["generate", "a", str(tmp_path / "x.wav"), *argv, *extra, "-q"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.wav").exists()


def test_unwritable_output_is_refused_before_loading(tmp_path, capsys):
    rc = main(["generate", "a", str(tmp_path), "--random-weights", "-q"])
    assert rc == 2 and "audiograd generate: error:" in capsys.readouterr().err
