"""DiffusionTransformer against stable-audio-tools' own class: identical random weights, float64
(bit-level agreement up to rounding) and float32 (no worse than 2x PyTorch's own float32 error)."""
from __future__ import annotations

import types

import numpy as np
import pytest

import audiograd as ag
from audiograd.models.dit import DiffusionTransformer
from sat_generation_reference import require_generation_reference

REF = require_generation_reference()
torch = REF.torch

# small configs covering SAO 1.0's layout (unprojected 2-head-group cross-attention context,
# prepended global token) and SAO Small's (qk layer norm, rectified flow)
CONFIGS = {
    "sao_like": dict(io_channels=8, embed_dim=128, depth=2, num_heads=2, cond_token_dim=64, global_cond_dim=128,
                     project_cond_tokens=False),
    "small_like": dict(io_channels=8, embed_dim=128, depth=2, num_heads=1, cond_token_dim=96, global_cond_dim=96, attn_kwargs={"qk_norm": "ln"}, diffusion_objective="rf_denoiser"),
    "projected": dict(io_channels=4, embed_dim=96, depth=1, num_heads=3, cond_token_dim=20, global_cond_dim=12,
                      project_cond_tokens=True, prepend_cond_dim=6),
    "adaln_patch": dict(io_channels=4, embed_dim=64, depth=2, num_heads=1, cond_token_dim=16, global_cond_dim=16,
                        global_cond_type="adaLN", patch_size=2),
}


def reference(name: str, dtype):
    torch.manual_seed(0)
    ref = REF.dit.DiffusionTransformer(**CONFIGS[name]).eval()
    with torch.no_grad():
        for n, p in ref.named_parameters():  # the class zero-initialises several layers: fill all
            scale = 1.0 if ("norm" in n and "weight" in n) or n.endswith("gamma") else 1.0 / np.sqrt(p.shape[-1])
            p.copy_(torch.randn_like(p) * scale + (1.0 if n.endswith(("norm.weight", "gamma")) else 0.0))
    return ref.to(dtype)


def ours(name: str, ref, dtype):
    model = DiffusionTransformer(**CONFIGS[name])
    model.load_state_dict({k: v.detach().float().numpy() for k, v in ref.state_dict().items()})
    return model.to(dtype) if dtype == ag.float64 else model


def inputs(name: str, batch: int = 2, length: int = 12, tokens: int = 5, seed: int = 1):
    cfg = CONFIGS[name]
    rng = np.random.default_rng(seed)
    out = dict(x=rng.standard_normal((batch, cfg["io_channels"], length)),
               t=rng.uniform(0.1, 0.9, batch),
               cross_attn_cond=rng.standard_normal((batch, tokens, cfg["cond_token_dim"])),
               global_embed=rng.standard_normal((batch, cfg["global_cond_dim"])))
    if cfg.get("prepend_cond_dim"):
        out["prepend_cond"] = rng.standard_normal((batch, 3, cfg["prepend_cond_dim"]))
        out["prepend_cond_mask"] = np.ones((batch, 3), dtype=bool)
    return out


class _Float64Rotary(types.ModuleType):
    """The reference's ``torch`` with ``float32`` meaning float64: stable-audio-tools rotates in
    float32 whatever the model's precision, which a float64 comparison must not inherit."""

    def __getattr__(self, name):
        return torch.float64 if name == "float32" else getattr(torch, name)


@pytest.fixture
def float64_rotary(monkeypatch):
    monkeypatch.setattr(REF.transformer, "torch", _Float64Rotary("torch"))


def run_ref(ref, data, dtype, **kw):
    args = {k: torch.tensor(v) if v.dtype == bool else torch.tensor(v, dtype=dtype) for k, v in data.items()}
    with torch.no_grad():
        return ref(**args, **kw).double().numpy()


def run_ours(model, data, dtype, **kw):
    args = {k: ag.tensor(v if v.dtype == bool else v.astype(dtype.np)) for k, v in data.items()}
    return model(**args, **kw).numpy().astype(np.float64)


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("cfg_scale", [1.0, 6.5])
def test_forward_float64(name, cfg_scale, float64_rotary):
    ref = reference(name, torch.float64)
    model = ours(name, ref, ag.float64)
    data = inputs(name)
    want = run_ref(ref, data, torch.float64, cfg_scale=cfg_scale)
    got = run_ours(model, data, ag.float64, cfg_scale=cfg_scale)
    assert np.abs(want).max() > 0.1  # a comparison of meaningful values
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())


@pytest.mark.parametrize("name", ["sao_like", "small_like"])
def test_forward_float32_within_twice_torch_error(name, monkeypatch):
    data = inputs(name, length=20, tokens=7)
    kw = dict(cfg_scale=4.0)
    ref64 = reference(name, torch.float64)
    with monkeypatch.context() as m:
        m.setattr(REF.transformer, "torch", _Float64Rotary("torch"))
        exact = run_ref(ref64, data, torch.float64, **kw)
    ref32 = reference(name, torch.float32)
    torch_err = np.abs(run_ref(ref32, data, torch.float32, **kw) - exact).max()
    our_err = np.abs(run_ours(ours(name, ref32, ag.float32), data, ag.float32, **kw) - exact).max()
    print(f"{name}: float32 max error ours {our_err:.3g}, PyTorch {torch_err:.3g} (output max {np.abs(exact).max():.3g})")
    assert our_err <= 2 * torch_err


def test_negative_prompt_mask_and_cfg_rescale(float64_rotary):
    name = "sao_like"
    ref = reference(name, torch.float64)
    model = ours(name, ref, ag.float64)
    data = inputs(name)
    rng = np.random.default_rng(5)
    neg = rng.standard_normal(data["cross_attn_cond"].shape)
    neg_mask = np.array([[1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=bool)
    cond_mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=bool)
    kw_t = dict(negative_cross_attn_cond=torch.tensor(neg), negative_cross_attn_mask=torch.tensor(neg_mask),
                cross_attn_cond_mask=torch.tensor(cond_mask), cfg_scale=7.0, scale_phi=0.7)
    want = run_ref(ref, data, torch.float64, **kw_t)
    got = run_ours(model, data, ag.float64, negative_cross_attn_cond=ag.tensor(neg),
                   negative_cross_attn_mask=ag.tensor(neg_mask), cross_attn_cond_mask=ag.tensor(cond_mask),
                   cfg_scale=7.0, scale_phi=0.7)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())


def test_state_dict_keys_match_reference():
    for name in CONFIGS:
        ref = REF.dit.DiffusionTransformer(**CONFIGS[name])
        assert set(DiffusionTransformer(**CONFIGS[name]).state_dict()) == set(ref.state_dict())


@pytest.mark.parametrize("option", [dict(transformer_type="mm_transformer"), dict(conformer=True),
                                    dict(attn_kwargs={"differential": True}), dict(timestep_cond_type="input_concat")])
def test_unsupported_options_are_named(option):
    with pytest.raises((NotImplementedError, ValueError), match=str(next(iter(option)))
                       if "attn_kwargs" not in option else "differential"):
        DiffusionTransformer(**{**CONFIGS["sao_like"], **option})


def test_bad_shapes_are_named():
    model = DiffusionTransformer(**CONFIGS["sao_like"])
    with pytest.raises(ValueError, match=r"x must be \(batch, 8, length\)"):
        model(np.zeros((2, 7, 12), np.float32), np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="t must be"):
        model(np.zeros((2, 8, 12), np.float32), np.zeros(3, np.float32))
