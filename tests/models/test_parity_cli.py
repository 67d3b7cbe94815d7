"""``audiograd parity``: layer-by-layer comparison with stable-audio-tools."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from audiograd.cli import parity
from audiograd.cli.main import main
from audiograd.cli.sat_import import ReferenceUnavailable

import sat_reference as sr

sr.require_reference()


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(sr.config("snake_odd")))
    return path


def test_cli_reports_no_divergence(tiny_config):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd()] + sys.path)
    proc = subprocess.run([sys.executable, "-m", "audiograd", "parity", "--part", "decoder",
                           "--config", str(tiny_config)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no divergence" in proc.stdout
    assert "layers.0" in proc.stdout and "ConvTranspose1d" not in proc.stdout  # top level only
    assert "FutureWarning" not in proc.stderr


@pytest.mark.parametrize("part", ["encoder", "decoder"])
def test_api_all_layers_agree(part):
    report = parity.run_parity(sr.config("elu_mono"), part=part, depth=2)
    assert report.first_divergent is None, report.table()
    assert report.output.cum_rel < 1e-5
    assert any(r.kind == "ResidualUnit" for r in report.rows)  # blocks were expanded
    report64 = parity.run_parity(sr.config("snake_wide"), part=part, dtype="float64")
    assert report64.first_divergent is None, report64.table()
    assert report64.output.cum_rel < 1e-10


def test_corrupted_weight_is_located():
    cfg = sr.config("snake_odd")
    clean = parity.reference_state(parity.build_reference(cfg, "decoder", seed=0))
    key = "layers.2.layers.1.weight_g"  # second decoder block's transposed conv
    bad = {key: clean[key] * 1.01}
    report = parity.run_parity(cfg, part="decoder", state_override=bad)
    assert report.first_divergent is not None and report.first_divergent.path == "layers.2", report.table()
    assert all(r.rel <= report.threshold for r in report.rows[:2])
    assert report.output.cum_rel > report.threshold  # and it shows at the output
    fine = parity.run_parity(cfg, part="decoder", state_override=bad, depth=2)
    assert fine.first_divergent.path == "layers.2.layers.1" and fine.first_divergent.kind == "ConvTranspose1d"
    assert "first divergent layer: layers.2.layers.1" in fine.table()


def test_cli_exit_code_on_divergence(tiny_config, capsys):
    # float32 cannot meet a 1e-12 threshold: the first layer counts as diverging
    code = main(["parity", "--part", "encoder", "--config", str(tiny_config), "--threshold", "1e-12"])
    assert code == 1
    assert "first divergent layer: layers.0" in capsys.readouterr().out


def test_checkpoint_option(tmp_path, tiny_config, capsys):
    from safetensors.numpy import save_file
    state = {f"pretransform.model.decoder.{k}": v.astype(np.float32)
             for k, v in sr.reference_state("snake_odd", "decoder", seed=5).items()}
    path = tmp_path / "model.safetensors"
    save_file(state, str(path))
    code = main(["parity", "--config", str(tiny_config), "--checkpoint", str(path), "--length", "4"])
    assert code == 0, capsys.readouterr().out
    with pytest.raises(ValueError, match="encoder"):
        parity.run_parity(sr.config("snake_odd"), checkpoint=path, part="encoder")


def test_missing_reference_exits_2(monkeypatch, capsys, tiny_config):
    def unavailable():
        raise ReferenceUnavailable("stable-audio-tools is not installed")
    monkeypatch.setattr(parity, "load_reference", unavailable)
    assert main(["parity", "--config", str(tiny_config)]) == 2
    err = capsys.readouterr().err
    assert "pip install" in err and "stable-audio-tools" in err and "torch" in err


@pytest.mark.parametrize("kind", ["checkpoint", "config"])
def test_unusable_weights_or_config_are_one_line(tmp_path, capsys, kind):
    """A file the comparison cannot use is one error line (exit 2), not a traceback."""
    pytest.importorskip("torch", reason="parity needs PyTorch")
    bad = tmp_path / ("bad.ckpt" if kind == "checkpoint" else "bad.json")
    bad.write_bytes(b"PK\x03\x04garbage" if kind == "checkpoint" else b'{"sample_rate": 4')
    from audiograd.cli.main import main
    rc = main(["parity", f"--{kind}", str(bad)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "bad." in err and "Traceback" not in err, err
