"""T5 encoder against transformers' ``T5EncoderModel`` with identical random weights; loading
from folders written by transformers; hostile config.json and weights."""
from __future__ import annotations

import copy
import functools
import json
import types

import numpy as np
import pytest

import audiograd as ag
from audiograd.models.t5 import T5_BASE, T5Encoder, read_t5_config, relative_position_buckets

torch = pytest.importorskip("torch", reason="PyTorch is the reference's runtime")
transformers = pytest.importorskip("transformers", reason="transformers' T5EncoderModel is the reference")

SMALL = dict(T5_BASE, d_model=64, d_kv=16, d_ff=96, num_heads=4, num_layers=2, vocab_size=300)
BASE_SHAPE = dict(T5_BASE, vocab_size=512)  # t5-base's layers; a smaller table keeps the test fast
CONFIGS = {"small": SMALL, "gated-gelu": dict(SMALL, feed_forward_proj="gated-gelu"), "t5-base": BASE_SHAPE}


def reference(cfg: dict, seed: int = 0, dtype=None, cls=None):
    """transformers' model with every weight redrawn at a realistic scale: gains around 1,
    matrices normal / sqrt(fan-in), relative position biases of a few units."""
    torch.manual_seed(seed)
    conf = transformers.T5Config(**cfg, dropout_rate=0.0, use_cache=False)
    model = (cls or transformers.T5EncoderModel)(conf).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif "relative_attention_bias" in name:
                p.copy_(2 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5)
    return model.to(dtype or torch.float32)


@functools.lru_cache(maxsize=None)
def _cached(name: str):
    return reference(CONFIGS[name])


def shared_reference(name: str, dtype=None):
    """The float32 reference of ``CONFIGS[name]``, built once per session (transformers'
    initialisation of t5-base's layers takes seconds), or a float64 copy of it."""
    return _cached(name) if dtype is None else copy.deepcopy(_cached(name)).to(dtype)


def ours_from(ref, cfg: dict) -> T5Encoder:
    model = T5Encoder(cfg)
    state = {k: v.detach().float().numpy() for k, v in ref.state_dict().items()}
    model.load_state_dict({k: state[k] for k in model.state_dict()})
    return model


def batch(cfg, length=16, seed=1):
    """Three prompts: one filling ``length``, two mostly padding (ids 0 after the mask ends)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(2, cfg["vocab_size"], (3, length))
    mask = np.ones_like(ids, dtype=bool)
    mask[1, 9:] = False
    mask[2, 2:] = False
    ids[~mask] = 0
    return ids, mask


def run_ref(ref, ids, mask):
    with torch.no_grad():
        return ref(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask.astype(np.int64))
                   ).last_hidden_state.double().numpy()


class _Float64Norm(types.ModuleType):
    """transformers' T5 modelling module sees ``torch.float32`` as float64: its layer norm
    computes the mean square in float32 whatever the model's dtype, which a float64 reference
    must not inherit."""

    def __getattr__(self, name):
        return torch.float64 if name == "float32" else getattr(torch, name)


def _float64_norms(monkeypatch) -> None:
    from transformers.models.t5 import modeling_t5
    monkeypatch.setattr(modeling_t5, "torch", _Float64Norm("torch"))


@pytest.fixture
def float64_reference(monkeypatch):
    _float64_norms(monkeypatch)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_float64_matches_transformers(name, float64_reference):
    cfg = CONFIGS[name]
    ref = shared_reference(name, torch.float64)
    ids, mask = batch(cfg)
    want = run_ref(ref, ids, mask)
    got = ours_from(ref, cfg).double()(ids, mask).numpy()
    assert want.std() > 0.3  # activations at a realistic scale, not a trivially small output
    err = np.abs(got - want).max() / np.abs(want).max()
    print(f"T5 {name} float64 max relative error: {err:.3g}")
    assert err <= 1e-9


@pytest.mark.parametrize("name", list(CONFIGS))
def test_float32_within_twice_transformers_error(name, monkeypatch):
    cfg = CONFIGS[name]
    ids, mask = batch(cfg)
    ref32 = shared_reference(name)
    theirs = run_ref(ref32, ids, mask)
    _float64_norms(monkeypatch)
    exact = run_ref(shared_reference(name, torch.float64), ids, mask)  # the same weights, in float64
    torch_err = np.abs(theirs - exact).max()
    our_err = np.abs(ours_from(ref32, cfg)(ids, mask).numpy().astype(np.float64) - exact).max()
    print(f"T5 {name} float32 max error: ours {our_err:.3g}, transformers {torch_err:.3g}")
    assert 0 < our_err <= 2 * torch_err


@pytest.mark.parametrize("buckets,distance", [(32, 128), (16, 64), (8, 20), (32, 40)])
def test_relative_position_buckets_match_transformers(buckets, distance):
    from transformers.models.t5.modeling_t5 import T5Attention
    n = 300
    rel = torch.arange(n)[None, :] - torch.arange(n)[:, None]
    want = T5Attention._relative_position_bucket(rel, bidirectional=True, num_buckets=buckets, max_distance=distance)
    np.testing.assert_array_equal(relative_position_buckets(n, buckets, distance), want.numpy())


def _assert_same_as(got: np.ndarray, want: np.ndarray) -> None:
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())


FORMATS = ["model.safetensors", "pytorch_model.bin", "legacy pytorch_model.bin"]


def save_folder(model, folder, fmt: str) -> None:
    """A Hugging Face folder as transformers writes it: ``save_pretrained`` for safetensors; the
    config plus ``torch.save`` of the state dict (zip, or the legacy pickle) for the
    pytorch_model.bin that older transformers versions wrote."""
    if fmt == "model.safetensors":
        model.save_pretrained(folder)
        return
    model.config.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin",
               _use_new_zipfile_serialization=not fmt.startswith("legacy"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_from_pretrained_folder(tmp_path, fmt):
    ref = reference(SMALL)
    save_folder(ref, tmp_path, fmt)
    ids, mask = batch(SMALL)
    _assert_same_as(T5Encoder.from_pretrained(tmp_path)(ids, mask).numpy(), run_ref(ref, ids, mask))


def test_from_pretrained_float64(tmp_path, float64_reference):
    ref = reference(SMALL, dtype=torch.float64)
    ref.save_pretrained(tmp_path)
    ids, mask = batch(SMALL)
    model = T5Encoder.from_pretrained(tmp_path, dtype=ag.float64)
    want = run_ref(ref, ids, mask)
    np.testing.assert_allclose(model(ids, mask).numpy(), want, rtol=0, atol=1e-9 * np.abs(want).max())


@pytest.mark.parametrize("fmt", FORMATS)
def test_whole_t5_checkpoint_loads_its_encoder(tmp_path, fmt):
    full = reference(SMALL, cls=transformers.T5ForConditionalGeneration)
    save_folder(full, tmp_path, fmt)  # tied embeddings: one storage under several keys
    ids, mask = batch(SMALL)
    with torch.no_grad():
        want = full.encoder(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask.astype(np.int64))
                            ).last_hidden_state.double().numpy()
    _assert_same_as(T5Encoder.from_pretrained(tmp_path)(ids, mask).numpy(), want)


def _save(folder, state, cfg=SMALL):
    from safetensors.numpy import save_file
    (folder / "config.json").write_text(json.dumps(cfg))
    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(folder / "model.safetensors"))


def _state(cfg=SMALL):
    return {k: v.numpy() for k, v in T5Encoder.random(cfg, seed=2).state_dict().items()}


def test_embed_tokens_alias_stands_for_shared(tmp_path):
    state = _state()
    state["encoder.embed_tokens.weight"] = state.pop("shared.weight")
    _save(tmp_path, state)
    ids, mask = batch(SMALL)
    np.testing.assert_array_equal(T5Encoder.from_pretrained(tmp_path)(ids, mask).numpy(),
                                  T5Encoder.random(SMALL, seed=2)(ids, mask).numpy())


def test_half_weights_round_like_float16(tmp_path):
    reference(SMALL).save_pretrained(tmp_path)
    model = T5Encoder.from_pretrained(tmp_path, half_weights=True)
    for key, value in model.state_dict().items():
        w = value.numpy()
        np.testing.assert_array_equal(w, w.astype(np.float16).astype(np.float32), err_msg=key)


def test_weights_that_do_not_fit_are_named(tmp_path):
    state = _state()
    state["encoder.block.2.layer.0.SelfAttention.q.weight"] = state["encoder.block.0.layer.0.SelfAttention.q.weight"]
    del state["encoder.final_layer_norm.weight"]
    state["decoder.block.0.layer.0.SelfAttention.q.weight"] = state["shared.weight"]  # a whole T5's: ignored
    _save(tmp_path, state)
    with pytest.raises(ValueError, match=r"missing encoder\.final_layer_norm\.weight; "
                                         r"unexpected encoder\.block\.2\.layer\.0\.SelfAttention\.q\.weight"):
        T5Encoder.from_pretrained(tmp_path)
    _save(tmp_path, _state(dict(SMALL, feed_forward_proj="gated-gelu")))  # weights of another layout
    with pytest.raises(ValueError, match=r"missing encoder\.block\.0\.layer\.1\.DenseReluDense\.wi\.weight.*"
                                         r"unexpected encoder\.block\.0\.layer\.1\.DenseReluDense\.wi_0\.weight"):
        T5Encoder.from_pretrained(tmp_path)
    _save(tmp_path, _state(dict(SMALL, d_ff=80)))
    with pytest.raises(ValueError, match=r"DenseReluDense\.wi\.weight has shape \(80, 64\), config\.json asks for \(96, 64\)"):
        T5Encoder.from_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no model.safetensors or pytorch_model.bin"):
        T5Encoder.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="T5 folder not found"):
        T5Encoder.from_pretrained(tmp_path / "absent")


HOSTILE = {
    "missing d_model": ({k: v for k, v in SMALL.items() if k != "d_model"}, "missing key 'd_model'"),
    "string size": (dict(SMALL, num_heads="12"), "num_heads must be a positive integer, got '12'"),
    "bool size": (dict(SMALL, num_layers=True), "num_layers must be a positive integer, got True"),
    "negative size": (dict(SMALL, d_kv=-1), "d_kv must be a positive integer"),
    "float size": (dict(SMALL, d_ff=96.0), "d_ff must be a positive integer"),
    "string eps": (dict(SMALL, layer_norm_epsilon="1e-6"), "layer_norm_epsilon must be a number"),
    "activation": (dict(SMALL, feed_forward_proj="gated-silu"), "feed_forward_proj 'gated-silu' is not supported"),
    "activation type": (dict(SMALL, feed_forward_proj=["relu"]), r"feed_forward_proj \['relu'\] is not supported"),
    "buckets": (dict(SMALL, relative_attention_num_buckets=2), "relative_attention_num_buckets 2"),
    "huge": (dict(SMALL, vocab_size=10 ** 12), "encoder parameters"),
    "list": ([1, 2], "a T5 config is a JSON object"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_config_is_named(tmp_path, case):
    content, message = HOSTILE[case]
    (tmp_path / "config.json").write_text(json.dumps(content))
    with pytest.raises(ValueError, match=message) as info:
        T5Encoder.from_pretrained(tmp_path)
    assert "config.json" in str(info.value)


def test_unreadable_config(tmp_path):
    (tmp_path / "config.json").write_bytes(b"\xff\xfe{not json")
    with pytest.raises(ValueError, match="config.json: not a JSON config"):
        read_t5_config(tmp_path / "config.json")
    with pytest.raises(FileNotFoundError, match="T5 config not found"):
        read_t5_config(tmp_path / "absent.json")


def test_bad_inputs_are_named():
    model = T5Encoder(SMALL)
    with pytest.raises(ValueError, match="token id out of range"):
        model(np.array([[5, 400]]), np.ones((1, 2), bool))
    with pytest.raises(ValueError, match="attention_mask"):
        model(np.array([[5, 4]]), np.ones((1, 3), bool))
    with pytest.raises(ValueError, match="integer array"):
        model(np.array([[5.0, 4.0]]), np.ones((1, 2), bool))


def test_random_encoder_is_seeded_and_realistic():
    ids, mask = batch(SMALL)
    a = T5Encoder.random(SMALL, seed=4)(ids, mask).numpy()
    np.testing.assert_array_equal(a, T5Encoder.random(SMALL, seed=4)(ids, mask).numpy())
    assert np.isfinite(a).all() and a.std() > 0.1
    assert not np.array_equal(a, T5Encoder.random(SMALL, seed=5)(ids, mask).numpy())


TEXTS = ["warm pad with a slow attack", "", "a long prompt about drums, bass and piano that is cut short"]


def _sat_conditioner(folder, monkeypatch, output_dim: int, max_length: int):
    """stable-audio-tools' own ``T5Conditioner``, its downloads redirected to ``folder``."""
    from sat_generation_reference import require_generation_reference
    t5_conditioner = require_generation_reference().conditioners.T5Conditioner
    monkeypatch.setattr(t5_conditioner, "T5_MODEL_DIMS", {"t5-base": SMALL["d_model"]})
    load_tokenizer = transformers.AutoTokenizer.from_pretrained
    load_model = transformers.T5EncoderModel.from_pretrained
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda name, *a, **k: load_tokenizer(folder))
    monkeypatch.setattr(transformers.T5EncoderModel, "from_pretrained", lambda name, *a, **k: load_model(folder))
    torch.manual_seed(7)
    return t5_conditioner(output_dim, "t5-base", max_length)


def test_text_conditioner_matches_stable_audio_tools(tmp_path, monkeypatch):
    """Ours (float16-rounded weights, float32 arithmetic) against the original conditioner run
    in float32 and float64 on the same rounded weights, and against its own float16 run."""
    import warnings
    from audiograd.models.text_conditioner import TextConditioner
    spm = pytest.importorskip("sentencepiece", reason="sentencepiece trains the test's vocabulary")
    reference(SMALL).save_pretrained(tmp_path)
    (tmp_path / "corpus.txt").write_text("\n".join(TEXTS * 20))
    spm.SentencePieceTrainer.train(input=str(tmp_path / "corpus.txt"), model_prefix=str(tmp_path / "spiece"),
                                   vocab_size=60, hard_vocab_limit=False, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                   minloglevel=2)
    sat = _sat_conditioner(tmp_path, monkeypatch, output_dim=48, max_length=12)
    ours = TextConditioner.from_folder(tmp_path, output_dim=48, max_length=12, half_weights=True)
    ours.proj_out.load_state_dict({k: v.detach().numpy() for k, v in sat.proj_out.state_dict().items()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its float16 autocast request on a machine without CUDA
        half, half_mask = (t.detach() for t in sat(TEXTS, "cpu"))

    def run(dtype):
        enc = sat.tokenizer(TEXTS, truncation=True, max_length=12, padding="max_length", return_tensors="pt")
        model, proj = copy.deepcopy(sat.model).to(dtype), copy.deepcopy(sat.proj_out).to(dtype)
        with torch.no_grad():
            emb = proj(model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state)
        return (emb * enc["attention_mask"].unsqueeze(-1).to(dtype)).double().numpy()

    theirs32 = run(torch.float32)
    _float64_norms(monkeypatch)
    exact = run(torch.float64)
    emb, mask = ours.encode(TEXTS)
    np.testing.assert_array_equal(mask.numpy(), half_mask.numpy())
    assert not mask.numpy()[1, 1:].any() and mask.numpy()[2].all()  # "" is </s> alone; the last is cut
    scale = np.abs(exact).max()
    our_err, torch_err = np.abs(emb.numpy() - exact).max(), np.abs(theirs32 - exact).max()
    half_err = np.abs(emb.numpy() - half.double().numpy()).max() / scale
    err64 = np.abs(ours.to(ag.float64).encode(TEXTS)[0].numpy() - exact).max() / scale
    print(f"T5 conditioner: float32 max error ours {our_err:.3g}, torch {torch_err:.3g}; float64 relative "
          f"{err64:.3g}; against stable-audio-tools' float16 run, relative {half_err:.3g}")
    assert (emb.numpy()[~mask.numpy()] == 0).all()
    assert our_err <= 2 * torch_err and err64 <= 1e-9
    assert half_err <= 1e-2  # its float16 arithmetic is not reproduced: the rounding of float16
