"""T5 encoder against transformers' ``T5EncoderModel`` with identical random weights."""
from __future__ import annotations

import json
import types

import numpy as np
import pytest

import audiograd as ag
from audiograd.models.t5 import T5_BASE, T5Encoder, read_t5_config, relative_position_buckets

torch = pytest.importorskip("torch", reason="PyTorch is the reference's runtime")
transformers = pytest.importorskip("transformers", reason="transformers' T5EncoderModel is the reference")

SMALL = dict(T5_BASE, d_model=64, d_kv=16, d_ff=96, num_heads=4, num_layers=2, vocab_size=300)


def reference(cfg: dict, seed: int = 0, dtype=None):
    torch.manual_seed(seed)
    conf = transformers.T5Config(**cfg, dropout_rate=0.0, is_encoder_decoder=False, use_cache=False)
    model = transformers.T5EncoderModel(conf).eval()
    with torch.no_grad():  # realistic scales, every weight non-trivial
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / (p.shape[-1] ** 0.5 if "bias" not in name else 1.0))
    return model.to(dtype or torch.float32)


def ours_from(ref, cfg: dict) -> T5Encoder:
    model = T5Encoder(cfg)
    state = {k: v.detach().float().numpy() for k, v in ref.state_dict().items()}
    model.load_state_dict({k: state[k] for k in model.state_dict()})
    return model


def batch(cfg, length=16, seed=1):
    rng = np.random.default_rng(seed)
    ids = rng.integers(2, cfg["vocab_size"], (3, length))
    mask = np.ones_like(ids, dtype=bool)
    mask[1, 9:] = False   # padded rows, as prompts shorter than max_length are
    mask[2, 2:] = False
    ids[~mask] = 0
    return ids, mask


def run_ref(ref, ids, mask):
    with torch.no_grad():
        return ref(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask.astype(np.int64))
                   ).last_hidden_state.double().numpy()


class _Float64Norm(types.ModuleType):
    """transformers' T5 modelling module sees ``torch.float32`` as float64: its layer norm
    computes the variance in float32 whatever the model's dtype, which a float64 comparison must
    not inherit."""

    def __getattr__(self, name):
        return torch.float64 if name == "float32" else getattr(torch, name)


@pytest.mark.parametrize("cfg", [SMALL, dict(SMALL, feed_forward_proj="gated-gelu")], ids=["relu", "gated-gelu"])
def test_float64_matches_transformers(cfg, monkeypatch):
    from transformers.models.t5 import modeling_t5
    monkeypatch.setattr(modeling_t5, "torch", _Float64Norm("torch"))
    ref = reference(cfg, dtype=torch.float64)
    ids, mask = batch(cfg)
    want = run_ref(ref, ids, mask)
    got = ours_from(ref, cfg).double()(ids, mask).numpy()
    assert np.abs(want).max() > 0.1
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())


@pytest.mark.parametrize("cfg,length", [(SMALL, 16), (T5_BASE, 12)], ids=["small", "t5-base"])
def test_float32_within_twice_transformers_error(cfg, length):
    ids, mask = batch(cfg, length)
    ref64 = reference(cfg, dtype=torch.float64)
    exact = run_ref(ref64, ids, mask)
    ref32 = reference(cfg)
    torch_err = np.abs(run_ref(ref32, ids, mask) - exact).max()
    our_err = np.abs(ours_from(ref32, cfg)(ids, mask).numpy().astype(np.float64) - exact).max()
    print(f"T5 float32 max error: ours {our_err:.3g}, transformers {torch_err:.3g}")
    assert our_err <= 2 * torch_err


def test_relative_position_buckets_match_transformers():
    from transformers.models.t5.modeling_t5 import T5Attention
    n = 300
    rel = torch.arange(n)[None, :] - torch.arange(n)[:, None]
    want = T5Attention._relative_position_bucket(rel, bidirectional=True, num_buckets=32, max_distance=128)
    np.testing.assert_array_equal(relative_position_buckets(n, 32, 128), want.numpy())


@pytest.mark.parametrize("safe", [True, False], ids=["safetensors", "pytorch_model.bin"])
def test_from_pretrained_folder(tmp_path, safe):
    ref = reference(SMALL)
    ref.save_pretrained(tmp_path, safe_serialization=safe)
    ids, mask = batch(SMALL)
    got = T5Encoder.from_pretrained(tmp_path)(ids, mask).numpy()
    np.testing.assert_allclose(got, run_ref(ref, ids, mask), rtol=1e-4, atol=1e-4)


def test_half_weights_round_like_float16(tmp_path):
    ref = reference(SMALL)
    ref.save_pretrained(tmp_path)
    model = T5Encoder.from_pretrained(tmp_path, half_weights=True)
    w = model.encoder.block[0].layer[0].SelfAttention.q.weight.numpy()
    np.testing.assert_array_equal(w, w.astype(np.float16).astype(np.float32))


def test_hostile_config_and_missing_keys(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(dict(SMALL, num_heads="12")))
    with pytest.raises(ValueError, match="num_heads must be a positive integer"):
        T5Encoder.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        read_t5_config(tmp_path / "config.json")
    (tmp_path / "config.json").write_text(json.dumps(SMALL))
    from safetensors.numpy import save_file
    save_file({"shared.weight": np.zeros((300, 64), np.float32)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="missing T5 encoder weights encoder.block.0"):
        T5Encoder.from_pretrained(tmp_path)


def test_bad_ids_are_named():
    model = T5Encoder(SMALL)
    with pytest.raises(ValueError, match="token id out of range"):
        model(np.array([[5, 400]]), np.ones((1, 2), bool))
    with pytest.raises(ValueError, match="attention_mask"):
        model(np.array([[5, 4]]), np.ones((1, 3), bool))
