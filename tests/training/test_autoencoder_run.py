"""``audiograd train autoencoder``: a tiny Oobleck trained on a folder of generated audio.

A resumed run must reproduce an uninterrupted one bit for bit; the run folder must hold a
checkpoint, an exported model that both audiograd and stable-audio-tools load, and demos; bad
folders, configs and checkpoints must fail with one clear error.
"""
import json

import numpy as np
import pytest

from audiograd.audio.io import write_audio
from audiograd.cli.main import main
from audiograd.models.checkpoint import load_state
from audiograd.models.oobleck import OobleckVAE
from audiograd.training.autoencoder_run import AutoencoderRunConfig, train_autoencoder

SR = 8000
CONFIG = {
    "model_type": "autoencoder", "sample_size": 1200, "sample_rate": SR, "audio_channels": 2,
    "model": {
        "encoder": {"type": "oobleck", "config": {"in_channels": 2, "channels": 4, "c_mults": [1, 2],
                                                  "strides": [3, 5], "latent_dim": 6, "use_snake": True}},
        "decoder": {"type": "oobleck", "config": {"out_channels": 2, "channels": 4, "c_mults": [1, 2],
                                                  "strides": [3, 5], "latent_dim": 3, "use_snake": True,
                                                  "final_tanh": False}},
        "bottleneck": {"type": "vae"}, "latent_dim": 3, "downsampling_ratio": 15, "io_channels": 2},
    "training": {
        "learning_rate": 1e-3, "use_ema": True,
        "optimizer_configs": {part: {"optimizer": {"type": "AdamW", "config": {"betas": [0.8, 0.99], "lr": 1e-3,
                                                                                "weight_decay": 1e-3}},
                                     "scheduler": {"type": "InverseLR",
                                                   "config": {"inv_gamma": 200, "power": 0.5, "warmup": 0.9}}}
                              for part in ("autoencoder", "discriminator")},
        "loss_configs": {
            "discriminator": {"type": "encodec", "config": {"filters": 4, "n_ffts": [128, 64], "hop_lengths": [32, 16],
                                                            "win_lengths": [128, 64]},
                              "weights": {"adversarial": 0.1, "feature_matching": 5.0}},
            "spectral": {"type": "mrstft", "config": {"fft_sizes": [256, 64], "hop_sizes": [64, 16],
                                                      "win_lengths": [256, 64], "perceptual_weighting": False},
                         "weights": {"mrstft": 1.0}},
            "time": {"type": "l1", "weights": {"l1": 0.1}},
            "bottleneck": {"type": "kl", "weights": {"kl": 1e-4}}},
    },
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    for i in range(5):
        n = int(rng.integers(900, 3000))
        t = np.arange(n) / SR
        clip = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 2000) * t) + 0.02 * rng.standard_normal(n)
        channels = 1 if i == 0 else 2  # a mono file is spread to both channels
        write_audio(folder / f"clip{i}.wav", np.tile(clip, (channels, 1)).astype(np.float32), SR)
    write_audio(folder / "other_rate.flac", (0.2 * rng.standard_normal((2, 4000))).astype(np.float32), 16000)
    return folder


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "vae.json"
    path.write_text(json.dumps(CONFIG))
    return path


def _run(out, data, config_file, **kw):
    settings = dict(data=data, out=out, config=config_file, batch_size=2, max_steps=4, checkpoint_every=2,
                    demo_every=2, progress=False)
    settings.update(kw)
    return train_autoencoder(AutoencoderRunConfig(**settings), log=lambda line: None)


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, data, config_file):
    out = tmp_path_factory.mktemp("runs") / "straight"
    summary = _run(out, data, config_file)
    return out, summary


def test_resumed_run_matches_an_uninterrupted_one_bit_for_bit(tmp_path, data, config_file, straight_run):
    straight, _ = straight_run
    _run(tmp_path / "split", data, config_file, max_steps=2)
    summary = _run(tmp_path / "split", data, config_file, resume=True, config=None)
    assert summary.steps == 4
    want = load_state(straight / "checkpoint.safetensors", allow_nonfinite=True)
    got = load_state(tmp_path / "split" / "checkpoint.safetensors", allow_nonfinite=True)
    assert sorted(want) == sorted(got)
    assert any(k.startswith("ema.") for k in want) and any(k.startswith("opt_disc.") for k in want)
    for k in want:
        assert np.array_equal(want[k], got[k], equal_nan=True), k
    assert (straight / "model.safetensors").read_bytes() == (tmp_path / "split" / "model.safetensors").read_bytes()


def test_run_folder_holds_an_exported_model_and_demos(straight_run, data):
    out, summary = straight_run
    assert summary.steps == 4 and summary.skipped == 0
    model = OobleckVAE.from_pretrained(out / "model.safetensors", out / "model_config.json")
    ema = {k[len("ema."):]: v for k, v in load_state(out / "checkpoint.safetensors", allow_nonfinite=True).items() if k.startswith("ema.")}
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), ema[k], err_msg=k)
    demos = sorted(p.name for p in (out / "demo").iterdir())
    assert demos == [f"recon_{s:08d}.{e}" for s in (0, 2, 4) for e in ("png", "wav")]
    assert (out / "demo" / "recon_00000004.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [s for s, _ in summary.demo_distances] == [0, 2, 4]
    assert all(np.isfinite(d) and d > 0 for _, d in summary.demo_distances)


def test_exported_model_loads_into_stable_audio_tools(straight_run):
    """stable-audio-tools' own autoencoder classes take the export strictly and decode alike."""
    from models import sat_reference as sr
    from training.sat_training_reference import reference
    ref, torch = sr.load_reference(), sr.load_reference().torch
    from safetensors.torch import load_file
    model = CONFIG["model"]
    sat = reference().AudioAutoencoder(ref.OobleckEncoder(**model["encoder"]["config"]),
                                       ref.OobleckDecoder(**model["decoder"]["config"]), latent_dim=3,
                                       downsampling_ratio=15, sample_rate=SR, io_channels=2,
                                       bottleneck=ref.VAEBottleneck())
    out, _ = straight_run
    sat.load_state_dict(load_file(str(out / "model.safetensors")), strict=True)
    ours = OobleckVAE.from_pretrained(out / "model.safetensors", out / "model_config.json")
    latents = np.random.default_rng(3).standard_normal((1, 3, 40)).astype(np.float32)
    with torch.no_grad():
        want = sat.decode(torch.from_numpy(latents)).numpy()
    np.testing.assert_allclose(ours.decode(latents).numpy(), want, rtol=1e-4, atol=1e-5)


def test_out_folder_must_be_new_unless_resuming(tmp_path, data, config_file):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--resume"):
        _run(tmp_path / "run", data, config_file)
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        _run(tmp_path / "run", data, config_file, resume=True)


def test_resume_refuses_another_config_and_a_damaged_checkpoint(tmp_path, data, config_file, straight_run):
    straight, _ = straight_run
    run = tmp_path / "copy"
    run.mkdir()
    for name in ("model_config.json", "checkpoint.safetensors"):
        (run / name).write_bytes((straight / name).read_bytes())
    other = tmp_path / "other.json"
    other.write_text(json.dumps(dict(CONFIG, sample_size=600)))
    with pytest.raises(ValueError, match="differs from the configuration"):
        _run(run, data, other, resume=True, max_steps=6)
    blob = bytearray((run / "checkpoint.safetensors").read_bytes())
    (run / "checkpoint.safetensors").write_bytes(bytes(blob[: len(blob) // 2]))
    with pytest.raises(ValueError, match="checkpoint.safetensors"):
        _run(run, data, None, resume=True, max_steps=6)


def test_cli_trains_and_reports_bad_input_in_one_line(tmp_path, data, config_file, capsys):
    out = tmp_path / "cli"
    args = ["train", "autoencoder", "--config", str(config_file), "--data", str(data), "--out", str(out),
            "--batch-size", "2", "--max-steps", "2", "--checkpoint-every", "2", "-q"]
    assert main(args) == 0
    assert (out / "model.safetensors").is_file()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("audiograd train: error:") and "--resume" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", "autoencoder", "--config", str(config_file), "--data", str(empty), "--out",
                 str(tmp_path / "x"), "-q"]) == 2
    assert str(empty) in capsys.readouterr().err
    assert main(["train", "autoencoder", "--config", str(config_file), "--data", str(data), "--out",
                 str(tmp_path / "y"), "--batch-size", "0", "-q"]) == 2
    assert "batch-size" in capsys.readouterr().err
