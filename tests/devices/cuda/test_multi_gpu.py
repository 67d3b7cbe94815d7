"""Several GPUs of one machine, addressed by number ("cuda:0", "cuda:1"): the tests that need two
GPUs skip with the reason on machines with one (``tests/devices/test_registry.py`` runs the
same scenarios on a stand-in for numbered devices on every machine)."""
import numpy as np
import pytest

import audiograd as ag
import audiograd.nn as nn

gpu = pytest.mark.gpu


def _gpu_count() -> int:
    import cupy
    return cupy.cuda.runtime.getDeviceCount()


@pytest.fixture
def two_gpus():
    if _gpu_count() < 2:
        pytest.skip("needs two GPUs: this machine has one")


@gpu
def test_a_gpu_beyond_the_count_is_one_clear_error():
    n = _gpu_count()
    with pytest.raises(RuntimeError, match=f"'cuda:{n}' is not available: CuPy sees {n} GPU"):
        ag.tensor([1.0], device=f"cuda:{n}")


@gpu
def test_cuda_and_cuda_0_are_one_device():
    x = ag.tensor([1.0, 2.0], device="cuda")
    assert x.device is ag.tensor([3.0], device="cuda:0").device and x.device == "cuda" and x.device == "cuda:0"
    assert x.cuda() is x and str(x.device) == "cuda:0"


@gpu
def test_tensors_and_gradients_on_the_second_gpu(two_gpus):
    import cupy
    a = np.random.default_rng(0).standard_normal((64, 33)).astype(np.float32)
    x = ag.tensor(a, device="cuda:1", requires_grad=True)
    y = (x.tanh() @ x.T).sum()
    assert y.device == "cuda:1" and x.node.buffer.device.id == 1
    y.backward()
    assert x.grad.device == "cuda:1" and x.grad.node.buffer.device.id == 1
    cpu = ag.tensor(a, requires_grad=True)
    (cpu.tanh() @ cpu.T).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), cpu.grad.numpy(), rtol=1e-4, atol=1e-4)
    assert cupy.cuda.runtime.getDevice() == 0  # the current GPU is left alone


@gpu
def test_mixing_gpus_is_one_clear_error(two_gpus):
    with pytest.raises(RuntimeError, match="'cuda:0' and 'cuda:1'"):
        ag.tensor([1.0], device="cuda:0") + ag.tensor([1.0], device="cuda:1")


@gpu
def test_a_jit_training_step_on_the_second_gpu(two_gpus):
    ag.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 8, 5, padding=2), nn.Tanh(), nn.Conv1d(8, 1, 3, padding=1)).to("cuda:1")
    opt = ag.optim.Adam(model.parameters(), lr=1e-2)
    x = ag.tensor(np.random.default_rng(1).standard_normal((2, 2, 256)).astype(np.float32), device="cuda:1")

    @ag.jit
    def step(inp):
        opt.zero_grad()
        loss = (model(inp) ** 2).mean()
        loss.backward()
        opt.step()
        return loss

    losses = [step(x).item() for _ in range(4)]
    assert losses[-1] < losses[0]
    assert all(p.node.buffer.device.id == 1 for p in model.parameters())
