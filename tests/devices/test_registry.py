"""Device names, device objects, and several numbered devices of one kind (tested on a stand-in
for GPUs: numbered CPU devices; ``tests/devices/cuda/test_multi_gpu.py`` runs the same on GPUs)."""
import numpy as np
import pytest

import audiograd as ag
import audiograd.nn as nn
from audiograd.devices import registry


@pytest.fixture
def standin(monkeypatch):
    monkeypatch.setitem(registry.BACKENDS, "standin", "standin_device")
    return lambda i: registry.get_device(f"standin:{i}")


def test_names_are_parsed_once_into_one_object_per_device():
    cpu = registry.get_device("cpu")
    assert registry.get_device("cpu") is cpu and registry.get_device(cpu) is cpu and registry.host() is cpu
    assert cpu == "cpu" and str(cpu) == "cpu" and repr(cpu) == "device(type='cpu')"
    assert registry.parse("cuda:1") == ("cuda", 1) and registry.parse("cuda") == ("cuda", None)
    t = ag.tensor([1.0, 2.0], device="cpu")
    assert t.device is cpu and t.device == "cpu" and t.cpu() is t


@pytest.mark.parametrize("name", ["tpu", "cuda:x", "cuda:-1", "CPU", "", "cpu:"])
def test_unknown_names_are_one_clear_error(name):
    with pytest.raises(RuntimeError, match="unknown device"):
        ag.tensor([1.0], device=name)


def test_a_single_device_has_no_numbers():
    with pytest.raises(RuntimeError, match="there is one 'cpu' device"):
        registry.get_device("cpu:1")


def test_numbered_devices_are_distinct(standin):
    d0, d1 = standin(0), standin(1)
    assert d0 is not d1 and d0 == "standin:0" and d0 == "standin" and d1 != "standin"
    assert d1.name == "standin:1" and repr(d1) == "device(type='standin', index=1)"
    assert registry.get_device("standin") is d0 and len({d0, d1, registry.get_device("standin:1")}) == 2


def test_tensors_compute_and_move_between_numbered_devices(standin):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4, 6)).astype(np.float32)
    x = ag.tensor(a, device="standin:1", requires_grad=True)
    assert x.device is standin(1)
    y = (x.sin() * 3).sum(1)
    assert y.device is standin(1)
    np.testing.assert_allclose(y.numpy(), (np.sin(a) * 3).sum(1), rtol=1e-5)
    z = y.to("standin:0")
    assert z.device is standin(0)
    (z * z).sum().backward()  # the gradient flows back across the move
    np.testing.assert_allclose(x.grad.numpy(), 2 * (np.sin(a) * 3).sum(1)[:, None] * 3 * np.cos(a), rtol=1e-4)
    assert x.grad.device is standin(1)


def test_mixing_numbered_devices_is_one_clear_error(standin):
    x = ag.tensor([1.0, 2.0], device="standin:0")
    y = ag.tensor([1.0, 2.0], device="standin:1")
    with pytest.raises(RuntimeError, match="'standin:0' and 'standin:1'"):
        x + y


def test_modules_optimizers_and_jit_on_a_numbered_device(standin):
    ag.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 4, 3, padding=1), nn.Tanh(), nn.Conv1d(4, 1, 3, padding=1))
    reference = nn.Sequential(nn.Conv1d(2, 4, 3, padding=1), nn.Tanh(), nn.Conv1d(4, 1, 3, padding=1))
    reference.load_state_dict(model.state_dict())
    model.to("standin:1")
    assert all(p.device is standin(1) for p in model.parameters())
    opt = ag.optim.Adam(model.parameters(), lr=1e-2)
    ref_opt = ag.optim.Adam(reference.parameters(), lr=1e-2)
    x = np.random.default_rng(1).standard_normal((3, 2, 32)).astype(np.float32)

    @ag.jit
    def step(inp):
        opt.zero_grad()
        loss = (model(inp) ** 2).mean()
        loss.backward()
        opt.step()
        return loss

    for _ in range(3):
        loss = step(ag.tensor(x, device="standin:1"))
        ref_opt.zero_grad()
        ref_loss = (reference(ag.tensor(x)) ** 2).mean()
        ref_loss.backward()
        ref_opt.step()
        assert loss.device is standin(1)
        np.testing.assert_allclose(loss.item(), ref_loss.item(), rtol=1e-5)
    assert all(st["exp_avg"].device is standin(1) for st in opt.state.values())
    for p, q in zip(model.parameters(), reference.parameters()):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-5, atol=1e-6)


def test_default_device_by_number(standin):
    before = ag.config.default_device
    try:
        ag.set_default_device("standin:1")
        assert ag.tensor([1.0]).device is standin(1) and ag.zeros(2).device is standin(1)
    finally:
        ag.config.default_device = before
    assert ag.tensor([1.0]).device is registry.default_device()


def test_using_device_is_a_scope(standin):
    before = registry.default_device()
    with pytest.raises(ValueError):
        with ag.using_device("standin:1") as dev:
            assert dev is standin(1) and ag.ones(2).device is standin(1) and ag.tensor([1.0]).device is dev
            raise ValueError("left by an exception")
    assert registry.default_device() is before
