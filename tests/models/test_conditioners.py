"""Number conditioner and conditioning assembly against stable-audio-tools' own code."""
from __future__ import annotations

import types

import numpy as np
import pytest

import audiograd as ag
from audiograd.models.conditioners import NumberConditioner, assemble
from sat_generation_reference import require_generation_reference

REF = require_generation_reference()
torch = REF.torch


def _pair(output_dim=24, min_val=0, max_val=512, seed=0):
    torch.manual_seed(seed)
    ref = REF.conditioners.NumberConditioner(output_dim, min_val=min_val, max_val=max_val).double()
    ours = NumberConditioner(output_dim, min_val=min_val, max_val=max_val)
    ours.load_state_dict({k: v.detach().float().numpy() for k, v in ref.state_dict().items()})
    return ref, ours.double()


def test_number_conditioner_matches_reference_float64():
    ref, ours = _pair()
    values = [0, 3.5, 47.55, 511.9, 900, -4]  # clamped at both ends, as the reference does
    torch.set_default_dtype(torch.float64)  # the reference normalises in the default dtype
    try:
        want_emb, want_mask = ref(values, device="cpu")
    finally:
        torch.set_default_dtype(torch.float32)
    got_emb, got_mask = ours(values)
    assert got_emb.shape == tuple(want_emb.shape) == (6, 1, 24)
    np.testing.assert_allclose(got_emb.numpy(), want_emb.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(got_mask.numpy(), want_mask.numpy().astype(bool))


def test_number_conditioner_float32_within_twice_torch_error():
    ref, ours = _pair(seed=3)
    values = [1.0, 10.0, 30.0, 47.0]
    exact = ref(values, device="cpu")[0].detach().numpy()
    ref32 = ref.float()
    torch_err = np.abs(ref32(values, device="cpu")[0].detach().double().numpy() - exact).max()
    our_err = np.abs(ours.float()(values)[0].numpy().astype(np.float64) - exact).max()
    assert our_err <= 2 * max(torch_err, 1e-7), (our_err, torch_err)


def test_assembly_matches_get_conditioning_inputs():
    rng = np.random.default_rng(0)
    prompt = (rng.standard_normal((2, 7, 16)), rng.random((2, 7)) > 0.3)
    start = (rng.standard_normal((2, 1, 16)), np.ones((2, 1), bool))
    total = (rng.standard_normal((2, 1, 16)), np.ones((2, 1), bool))
    outputs = {"prompt": prompt, "seconds_start": start, "seconds_total": total}
    cross, glob = ["prompt", "seconds_start", "seconds_total"], ["seconds_start", "seconds_total"]
    wrapper = types.SimpleNamespace(cross_attn_cond_ids=cross, global_cond_ids=glob, input_concat_ids=[],
                                    prepend_cond_ids=[])
    want = REF.diffusion.ConditionedDiffusionModelWrapper.get_conditioning_inputs(
        wrapper, {k: (torch.tensor(e), torch.tensor(m)) for k, (e, m) in outputs.items()})
    got = assemble({k: (ag.tensor(e), ag.tensor(m)) for k, (e, m) in outputs.items()}, cross, glob)
    np.testing.assert_array_equal(got["cross_attn_cond"].numpy(), want["cross_attn_cond"].numpy())
    np.testing.assert_array_equal(got["cross_attn_mask"].numpy(), want["cross_attn_mask"].numpy())
    np.testing.assert_array_equal(got["global_cond"].numpy(), want["global_cond"].numpy())
    assert got["global_cond"].shape == (2, 32)


def test_missing_conditioner_is_named():
    with pytest.raises(KeyError, match="seconds_total"):
        assemble({"prompt": (ag.zeros(1, 2, 4), ag.zeros(1, 2))}, ["prompt", "seconds_total"], [])


def test_bad_range_is_refused():
    with pytest.raises(ValueError, match="max_val"):
        NumberConditioner(8, min_val=5, max_val=5)
