"""The whole text-to-audio pipeline against one assembled from the originals, with identical
random weights, token ids, initial and per-step noise: transformers' T5, stable-audio-tools'
number conditioners, conditioning assembly, DiT wrapper, ``sample_k`` / ``sample_rf`` and
Oobleck decoder."""
from __future__ import annotations

import json
import types

import numpy as np
import pytest

import audiograd as ag
from audiograd.models.sampling import NoiseSource
from audiograd.models.sao_config import read_generation_config
from audiograd.models.stable_audio import StableAudio
from audiograd.models.t5_tokenizer import standin_tokenizer
from sao_configs import T5_TINY, VAE_TINY, tiny_config, tiny_model, write_files
from sat_generation_reference import require_generation_reference

REF = require_generation_reference()
torch = REF.torch
transformers = pytest.importorskip("transformers", reason="transformers' T5EncoderModel is the reference T5")

def build_ours(cfg: dict) -> StableAudio:
    return tiny_model(cfg)


def build_reference(cfg: dict, ours: StableAudio):
    """The originals with our weights: {t5, numbers, wrapper (DiTWrapper), decoder}."""
    gen = read_generation_config(cfg)
    state = {k: torch.from_numpy(v.numpy().astype(np.float64)) for k, v in ours.state_dict().items()}
    t5 = transformers.T5EncoderModel(transformers.T5Config(**T5_TINY, dropout_rate=0.0)).double().eval()
    t5.load_state_dict({k: torch.from_numpy(v.numpy().astype(np.float64))
                        for k, v in ours.texts["prompt"].encoder.state_dict().items()}, strict=False)
    proj = torch.nn.Linear(32, 64).double()
    proj.load_state_dict({k.split("proj_out.")[1]: v for k, v in state.items() if ".prompt.proj_out." in k})
    numbers = {}
    for spec in gen.conditioners:
        if spec.type == "number":
            c = REF.conditioners.NumberConditioner(64, **spec.config).double()
            prefix = f"conditioner.conditioners.{spec.id}."
            c.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
            numbers[spec.id] = c
    wrapper = REF.diffusion.DiTWrapper(diffusion_objective=gen.diffusion_objective, **gen.dit).double().eval()
    wrapper.load_state_dict({k[len("model."):]: v for k, v in state.items() if k.startswith("model.model.")})
    decoder = REF.autoencoders.OobleckDecoder(**VAE_TINY["decoder"]["config"]).double().eval()
    decoder.load_state_dict({k[len("pretransform.model.decoder."):]: v for k, v in state.items()
                             if k.startswith("pretransform.model.decoder.")})
    return types.SimpleNamespace(t5=t5, proj=proj, numbers=numbers, wrapper=wrapper, decoder=decoder, gen=gen)


def reference_generate(ref, prompt, negative, seconds, steps, cfg_scale, seed, sampler):
    """stable-audio-tools' generate_diffusion_cond, step by step, on the original parts."""
    gen = ref.gen
    tok = standin_tokenizer()

    def conditioning(text):
        ids, mask = tok([text], 12)
        with torch.no_grad():
            emb = ref.t5(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).last_hidden_state
        emb = ref.proj(emb) * torch.tensor(mask, dtype=torch.float64).unsqueeze(-1)
        out = {"prompt": (emb, torch.tensor(mask))}
        for cid, c in ref.numbers.items():
            out[cid] = c([seconds if cid == "seconds_total" else 0.0], device="cpu")
        holder = types.SimpleNamespace(cross_attn_cond_ids=gen.cross_attn_ids, global_cond_ids=gen.global_ids,
                                       input_concat_ids=[], prepend_cond_ids=[])
        return holder, out

    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # the originals build sigmas and numbers in the default dtype
    try:
        return _reference_generate(ref, conditioning, gen, prompt, negative, seconds, steps, cfg_scale, seed, sampler)
    finally:
        torch.set_default_dtype(prev)


def _reference_generate(ref, conditioning, gen, prompt, negative, seconds, steps, cfg_scale, seed, sampler):
    holder, cond = conditioning(prompt)
    inputs = REF.diffusion.ConditionedDiffusionModelWrapper.get_conditioning_inputs(holder, cond)
    negative_inputs = {}
    if negative is not None:
        h2, ncond = conditioning(negative)
        negative_inputs = REF.diffusion.ConditionedDiffusionModelWrapper.get_conditioning_inputs(h2, ncond,
                                                                                               negative=True)
    frames = gen.sample_size // 8
    source = NoiseSource(seed)
    noise = torch.tensor(source.normal((1, 8, frames), ag.float64, None).numpy())
    per_step = lambda *_: torch.tensor(source.normal((1, 8, frames), ag.float64, None).numpy())  # noqa: E731
    mp = pytest.MonkeyPatch()
    try:
        if gen.diffusion_objective == "v":
            name = "sample_" + sampler.replace("-", "_")
            original = getattr(REF.k_diffusion.sampling, name)
            if sampler.endswith("-sde"):
                mp.setattr(REF.k_diffusion.sampling, name, lambda *a, **kw: original(*a, noise_sampler=per_step, **kw))
            with torch.no_grad():
                latents = REF.sampling.sample_k(ref.wrapper, noise, None, steps, sampler_type=sampler, sigma_min=0.3,
                                                sigma_max=500, rho=1.0, device="cpu", **inputs, **negative_inputs,
                                                cfg_scale=cfg_scale, batch_cfg=True, rescale_cfg=True)
        else:
            mp.setattr(torch, "randn_like", lambda x, **kw: per_step())
            with torch.no_grad():
                latents = REF.sampling.sample_rf(ref.wrapper, noise, init_data=None, steps=steps, sampler_type=sampler,
                                                 device="cpu", **inputs, **negative_inputs, cfg_scale=cfg_scale,
                                                 batch_cfg=True, rescale_cfg=True)
        with torch.no_grad():
            audio = ref.decoder(latents)
    finally:
        mp.undo()
    return audio.numpy()[..., :int(round(seconds * 44100))]


class _Float64(types.ModuleType):
    def __getattr__(self, name):
        return torch.float64 if name == "float32" else getattr(torch, name)


@pytest.mark.parametrize("preset,sampler,steps,cfg_scale,negative", [
    ("sao-1.0", "dpmpp-3m-sde", 6, 7.0, "muffled, low quality"),
    ("sao-1.0", "dpmpp-2m", 4, 7.0, None),
    ("sao-small", "pingpong", 4, 1.0, None)])
def test_generate_matches_reference_float64(preset, sampler, steps, cfg_scale, negative, monkeypatch):
    from transformers.models.t5 import modeling_t5
    monkeypatch.setattr(REF.transformer, "torch", _Float64("torch"))  # rotary in float64 too
    monkeypatch.setattr(modeling_t5, "torch", _Float64("torch"))      # T5's norm variance too
    cfg = tiny_config(preset)
    ours = build_ours(cfg)
    ref = build_reference(cfg, ours)
    seconds = 0.003
    want = reference_generate(ref, "rain on a tin roof", negative, seconds, steps, cfg_scale, 11, sampler)
    got = ours.double().generate("rain on a tin roof", seconds=seconds, steps=steps, cfg_scale=cfg_scale, seed=11,
                                 sampler=sampler, negative_prompt=negative)
    assert got.shape == want.shape == (1, 2, int(round(seconds * 44100)))
    assert np.abs(want).max() > 1e-3
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())


def test_generate_is_seeded_and_checks_arguments():
    model = build_ours(tiny_config("sao-small"))
    a = model.generate("a", seconds=0.002, steps=2, seed=1)
    b = model.generate("a", seconds=0.002, steps=2, seed=1)
    c = model.generate("a", seconds=0.002, steps=2, seed=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    with pytest.raises(ValueError, match="pingpong"):
        model.generate("a", sampler="dpmpp-3m-sde")
    with pytest.raises(ValueError, match="exceed the generated window"):
        model.generate("a", seconds=10.0)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        model.generate("a", steps=0)


def test_checkpoint_round_trip_and_missing_keys(tmp_path):
    from safetensors.numpy import save_file
    cfg = tiny_config("sao-small")
    model = build_ours(cfg)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    save_file(state, str(tmp_path / "model.safetensors"))
    (tmp_path / "model_config.json").write_text(json.dumps(cfg))
    fresh = StableAudio(cfg, {"prompt": model.texts["prompt"]})
    fresh.load_checkpoint(tmp_path / "model.safetensors")
    for k, v in fresh.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), state[k])
    del state["model.model.transformer.layers.0.ff.ff.0.proj.weight"]
    save_file(state, str(tmp_path / "broken.safetensors"))
    with pytest.raises(ValueError, match="missing weights model.model.transformer.layers.0.ff.ff.0.proj.weight"):
        fresh.load_checkpoint(tmp_path / "broken.safetensors")


@pytest.mark.parametrize("mutate,match", [
    (lambda c: c.update(model_type="autoencoder"), "diffusion_cond"),
    (lambda c: c["model"]["diffusion"].update(type="adp_cfg_1d"), "only 'dit'"),
    (lambda c: c["model"]["conditioning"]["configs"].append({"id": "x", "type": "clap_text"}), "clap_text"),
    (lambda c: c.update(sample_size="big"), "sample_size must be a positive integer"),
    (lambda c: c["model"].update(diffusion=[1]), "model.diffusion must be a JSON object")])
def test_config_errors_are_named(mutate, match):
    cfg = tiny_config("sao-small")
    mutate(cfg)
    with pytest.raises((ValueError, NotImplementedError), match=match):
        read_generation_config(cfg)


def test_from_pretrained_matches_the_model_it_was_saved_from(tmp_path):
    cfg = tiny_config("sao-small")
    model = build_ours(cfg)
    write_files(tmp_path, cfg, model)
    loaded = StableAudio.from_pretrained(tmp_path / "model.safetensors", tmp_path / "model_config.json",
                                         t5=tmp_path / "t5", t5_half_weights=False)
    kw = dict(seconds=0.002, steps=2, seed=4)
    np.testing.assert_array_equal(loaded.generate("a dog barks", **kw), model.generate("a dog barks", **kw))
    with pytest.raises(ValueError, match="needs T5"):
        StableAudio.from_pretrained(tmp_path / "model.safetensors", tmp_path / "model_config.json")
