"""The autoencoder training wrapper's own behaviour: non-finite losses handled as asked, the
exported model (EMA weights, the original's keys, written atomically), bad batches named."""
import json

import numpy as np
import pytest

import audiograd as ag
from audiograd.models.checkpoint import load_state
from audiograd.models.oobleck import OobleckVAE
from audiograd.training.autoencoder import AutoencoderTrainingWrapper, NonFiniteLoss

from training.test_autoencoder_run import CONFIG


def _wrapper(**kw):
    ag.manual_seed(0)
    return AutoencoderTrainingWrapper.from_config(OobleckVAE(CONFIG), CONFIG, **kw)


def _batch(seed=0):
    return (0.3 * np.random.default_rng(seed).standard_normal((2, 2, 600))).astype(np.float32)


def _poison(wrapper):
    """Make the next generator step's loss NaN through one decoder weight."""
    p = next(iter(wrapper.autoencoder.decoder.parameters()))
    p.assign(p * float("nan"))
    return {k: v.numpy().copy() for k, v in wrapper.autoencoder.state_dict().items()}


def test_nonfinite_loss_is_skipped_by_default():
    wrapper = _wrapper()
    before = _poison(wrapper)
    values = wrapper.training_step(_batch())
    assert not np.isfinite(values["loss"])
    assert wrapper.skipped_steps == 1 and wrapper.global_step == 1
    after = wrapper.autoencoder.state_dict()
    for k, v in before.items():
        np.testing.assert_array_equal(after[k].numpy(), v, err_msg=k)


def test_nonfinite_loss_stops_with_a_report():
    wrapper = _wrapper(on_nonfinite="stop")
    _poison(wrapper)
    with pytest.raises(NonFiniteLoss, match="step 0: non-finite loss") as info:
        wrapper.training_step(_batch())
    assert "mrstft_loss" in info.value.losses


def test_finite_steps_update_both_networks_and_export_the_ema(tmp_path):
    wrapper = _wrapper()
    gen_before = {k: v.numpy().copy() for k, v in wrapper.autoencoder.state_dict().items()}
    disc_before = {k: v.numpy().copy() for k, v in wrapper.discriminator.state_dict().items()}
    for step in range(4):
        values = wrapper.training_step(_batch(step))
        assert all(np.isfinite(v) for v in values.values()), values
    assert wrapper.skipped_steps == 0
    assert any(not np.array_equal(v.numpy(), gen_before[k]) for k, v in wrapper.autoencoder.state_dict().items())
    assert any(not np.array_equal(v.numpy(), disc_before[k]) for k, v in wrapper.discriminator.state_dict().items()
               if "weight_v" in k)
    wrapper.export_model(tmp_path / "model.safetensors")
    exported = load_state(tmp_path / "model.safetensors")
    assert sorted(exported) == sorted(wrapper.autoencoder.state_dict())
    for k, v in wrapper.ema.shadow.items():
        np.testing.assert_array_equal(exported[k], v.numpy(), err_msg=k)
    assert any(not np.array_equal(exported[k], v.numpy()) for k, v in wrapper.autoencoder.state_dict().items()
               if k in wrapper.ema.shadow), "the export must hold the EMA weights, not the live ones"
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    OobleckVAE.from_pretrained(tmp_path / "model.safetensors", tmp_path / "config.json")


def test_bad_batches_and_options_are_named():
    wrapper = _wrapper()
    with pytest.raises(ValueError, match=r"expected audio \(batch, 2, samples\)"):
        wrapper.training_step(np.zeros((2, 3, 600), np.float32))
    with pytest.raises(ValueError, match="on_nonfinite"):
        _wrapper(on_nonfinite="retry")
    with pytest.raises(ValueError, match="warmup_mode"):
        _wrapper(warmup_mode="slow")
