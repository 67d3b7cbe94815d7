"""OobleckVAE.from_pretrained on checkpoints laid out like Stable Audio Open's, and its errors."""
import json
import re
import zipfile

import numpy as np
import pytest

import audiograd
from audiograd.models.oobleck import OobleckVAE

import sat_reference as sr

REF = sr.require_reference()
torch = REF.torch
NAME = "snake_odd"
PREFIX = "pretransform.model."


def _sao_state(name=NAME, dtype=np.float32):
    """Flat state dict as in SAO's model.safetensors: VAE keys under pretransform.model., plus
    unrelated diffusion/conditioner keys that must be ignored."""
    state = {}
    for part in ("encoder", "decoder"):
        for k, v in sr.reference_state(name, part).items():
            state[f"{PREFIX}{part}.{k}"] = v.astype(dtype)
    state["model.model.transformer.layers.0.self_attn.to_qkv.weight"] = np.ones((6, 2), dtype)
    state["conditioner.conditioners.seconds_total.embedder.embedding.0.weight"] = np.ones(3, dtype)
    return state


def _save(path, state):
    from safetensors.numpy import save_file
    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(path))
    return path


def _outputs(vae, x, z):
    with audiograd.no_grad():
        return vae.encode(x).numpy(), vae.decode(z).numpy()


@pytest.fixture(scope="module")
def inputs():
    return sr.make_input(NAME, "encoder", length=1500, seed=1), sr.make_input(NAME, "decoder", length=4, seed=2)


@pytest.fixture(scope="module")
def expected(inputs):
    x, z = inputs
    enc = sr.reference_forward(NAME, "encoder", x)
    return enc[:, :enc.shape[1] // 2], sr.reference_forward(NAME, "decoder", z)


def _assert_matches(vae, inputs, expected, tol=1e-5):
    for out, ref in zip(_outputs(vae, *inputs), expected):
        d, rms, rel = sr.rel_error(out, ref)
        assert rel < tol, f"max abs {d:.3e} / RMS {rms:.3e}"


def test_safetensors_with_sao_prefix_loads(tmp_path, inputs, expected):
    path = _save(tmp_path / "model.safetensors", _sao_state())
    _assert_matches(OobleckVAE.from_pretrained(path, config=sr.config(NAME)), inputs, expected)
    _assert_matches(OobleckVAE.from_pretrained(str(path), config=sr.config(NAME)), inputs, expected)


def test_full_model_config_json_is_accepted(tmp_path, inputs, expected):
    path = _save(tmp_path / "model.safetensors", _sao_state())
    model_config = {"model_type": "diffusion_cond", "sample_rate": 44100, "audio_channels": 2,
                    "model": {"pretransform": {"type": "autoencoder", "iterate_batch": True,
                                               "config": sr.config(NAME)}}}
    cfg_path = tmp_path / "model_config.json"
    cfg_path.write_text(json.dumps(model_config))
    for cfg in (model_config, cfg_path):
        _assert_matches(OobleckVAE.from_pretrained(path, config=cfg), inputs, expected)


def test_torch_ckpt_with_state_dict_loads(tmp_path, inputs, expected):
    state = {k: torch.from_numpy(v) for k, v in _sao_state().items()}
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": state, "global_step": 3}, str(path))
    _assert_matches(OobleckVAE.from_pretrained(path, config=sr.config(NAME)), inputs, expected)


def test_vae_only_keys_load(tmp_path, inputs, expected):
    state = {k[len(PREFIX):]: v for k, v in _sao_state().items() if k.startswith(PREFIX)}
    path = _save(tmp_path / "vae.safetensors", state)
    _assert_matches(OobleckVAE.from_pretrained(path, config=sr.config(NAME)), inputs, expected)


def test_from_pretrained_equals_direct_load(tmp_path, inputs):
    path = _save(tmp_path / "model.safetensors", _sao_state())
    a = OobleckVAE.from_pretrained(path, config=sr.config(NAME))
    b = OobleckVAE(sr.config(NAME))
    b.encoder.load_state_dict(sr.reference_state(NAME, "encoder"))
    b.decoder.load_state_dict(sr.reference_state(NAME, "decoder"))
    for oa, ob in zip(_outputs(a, *inputs), _outputs(b, *inputs)):
        np.testing.assert_array_equal(oa, ob)


# ---- errors -------------------------------------------------------------------------------------
def _raises_naming(path, *keys):
    with pytest.raises((KeyError, ValueError)) as info:
        OobleckVAE.from_pretrained(path, config=sr.config(NAME))
    msg = str(info.value)
    for k in keys:
        assert re.search(re.escape(k), msg), f"error does not name {k!r}: {msg[:500]}"
    return msg


def test_missing_key_is_named(tmp_path):
    state = _sao_state()
    del state[PREFIX + "decoder.layers.1.layers.1.weight_v"]
    _raises_naming(_save(tmp_path / "m.safetensors", state), "layers.1.layers.1.weight_v")


def test_unexpected_key_is_named(tmp_path):
    state = _sao_state()
    state[PREFIX + "encoder.layers.9.weight_v"] = np.ones((2, 2, 1), np.float32)
    _raises_naming(_save(tmp_path / "m.safetensors", state), "layers.9.weight_v")


def test_misshaped_key_is_named(tmp_path):
    state = _sao_state()
    key = PREFIX + "encoder.layers.1.layers.0.layers.1.weight_v"
    state[key] = np.ones(state[key].shape[:-1] + (5,), np.float32)
    msg = _raises_naming(_save(tmp_path / "m.safetensors", state), "layers.1.layers.0.layers.1.weight_v")
    assert "7" in msg and "5" in msg  # both shapes


def test_checkpoint_of_another_config_is_rejected(tmp_path):
    state = {f"{PREFIX}{p}.{k}": v.astype(np.float32) for p in ("encoder", "decoder")
             for k, v in sr.reference_state("snake_wide", p).items()}
    path = _save(tmp_path / "m.safetensors", state)
    with pytest.raises((KeyError, ValueError)):
        OobleckVAE.from_pretrained(path, config=sr.config(NAME))


def test_truncated_safetensors_is_a_clear_error(tmp_path):
    path = _save(tmp_path / "m.safetensors", _sao_state())
    data = path.read_bytes()
    for cut in (len(data) // 2, 20, 5):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=re.escape(str(path))):
            OobleckVAE.from_pretrained(path, config=sr.config(NAME))


def test_truncated_torch_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": {k: torch.from_numpy(v) for k, v in _sao_state().items()}}, str(path))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match=re.escape(str(path))):
        OobleckVAE.from_pretrained(path, config=sr.config(NAME))


@pytest.mark.parametrize("kind", ["text", "random", "npy", "zip", "json"])
def test_foreign_file_is_a_clear_error(tmp_path, kind):
    path = tmp_path / f"foreign.{kind}"
    if kind == "text":
        path.write_text("this is not a checkpoint\n" * 10)
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "npy":
        np.save(path, np.ones((4, 4)))  # the name already ends in .npy: kept as is
    elif kind == "zip":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("readme.txt", "hello")
    else:
        path.write_text(json.dumps({"encoder.layers.0.bias": [1, 2]}))
    with pytest.raises(ValueError, match=re.escape(path.name)):
        OobleckVAE.from_pretrained(path, config=sr.config(NAME))


def test_checkpoint_without_vae_keys_is_a_clear_error(tmp_path):
    path = _save(tmp_path / "m.safetensors", {"model.model.x": np.ones(3, np.float32)})
    with pytest.raises(ValueError, match="encoder"):
        OobleckVAE.from_pretrained(path, config=sr.config(NAME))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.safetensors"):
        OobleckVAE.from_pretrained(tmp_path / "nothing.safetensors", config=sr.config(NAME))
