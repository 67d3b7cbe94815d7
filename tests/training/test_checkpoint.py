"""Training checkpoints: a resumed run is identical to an uninterrupted one."""
import numpy as np
import pytest

import audiograd as ag
from audiograd import nn, optim
from audiograd.training import load_checkpoint, save_checkpoint

X = np.random.default_rng(0).standard_normal((32, 3)).astype(np.float32)
Y = np.sin(X.sum(1, keepdims=True)).astype(np.float32)


def make(opt_name):
    ag.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    opt = optim.Adam(model.parameters(), lr=0.01, amsgrad=True) if opt_name == "adam" else \
        optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    return model, opt


def train(model, opt, steps):
    for _ in range(steps):
        opt.zero_grad()
        loss = ((model(ag.tensor(X)) - ag.tensor(Y)) ** 2).mean()
        loss.backward()
        opt.step()
    return loss.item()


@pytest.mark.parametrize("opt_name", ["adam", "sgd"])
def test_resume_gives_identical_results(tmp_path, opt_name):
    ref_model, ref_opt = make(opt_name)
    train(ref_model, ref_opt, 10)
    ref_loss = train(ref_model, ref_opt, 10)

    model, opt = make(opt_name)
    train(model, opt, 10)
    save_checkpoint(tmp_path / "ckpt.safetensors", model, opt, extra={"step": 10})
    fresh_model, fresh_opt = make(opt_name)
    extra = load_checkpoint(tmp_path / "ckpt.safetensors", fresh_model, fresh_opt)
    assert extra == {"step": 10}
    loss = train(fresh_model, fresh_opt, 10)
    assert loss == ref_loss
    for (k, a), (_, b) in zip(fresh_model.state_dict().items(), ref_model.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)


def test_failed_save_keeps_the_previous_checkpoint(tmp_path):
    model, opt = make("adam")
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, model, opt, extra={"step": 1})
    before = path.read_bytes()
    with pytest.raises(TypeError):
        save_checkpoint(path, model, opt, extra={"bad": object()})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.safetensors"]


def test_rejects_foreign_files(tmp_path):
    from safetensors.numpy import save_file
    path = tmp_path / "weights.safetensors"
    save_file({"x": np.zeros(3, np.float32)}, str(path))
    model, opt = make("sgd")
    with pytest.raises(ValueError, match="not an audiograd training checkpoint"):
        load_checkpoint(path, model, opt)


def _saved(tmp_path):
    model, opt = make("adam")
    train(model, opt, 2)
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, model, opt, extra={"step": 2})
    return path


@pytest.mark.parametrize("damage", ["truncate", "header", "empty"])
def test_damaged_checkpoint_is_one_error_naming_the_file(tmp_path, damage):
    from audiograd.models.checkpoint import CheckpointError
    path = _saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes({"truncate": data[:len(data) // 2], "header": b"\xff" * 8 + data[8:], "empty": b""}[damage])
    model, opt = make("adam")
    with pytest.raises(CheckpointError, match=str(path.name)):
        load_checkpoint(path, model, opt)


@pytest.mark.parametrize("meta", ['{"extra": {}, "optimizer": {"scalars": 3}}', '{"extra"', '[1, 2]'])
def test_malformed_metadata_is_one_error_naming_the_file(tmp_path, meta):
    from safetensors.numpy import save_file
    path = _saved(tmp_path)
    from audiograd.models.checkpoint import load_state
    save_file(load_state(path), str(path), metadata={"audiograd": meta})
    model, opt = make("adam")
    with pytest.raises(ValueError, match=str(path.name)):
        load_checkpoint(path, model, opt)
