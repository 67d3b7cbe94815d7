"""The interpreter as a device: naming, moving tensors, mixing devices, buffers, in-place
writes, jit capture and optimizers, each checked against the CPU."""

import numpy as np
import pytest

import audiograd as ag
from audiograd import nn
from audiograd.devices.interp.interpreter import read
from audiograd.devices.registry import get_device
from audiograd.graph.view import View
from audiograd.nn.module import Parameter
from audiograd.optim import Adam

RNG = np.random.default_rng(0)



def test_tensors_live_on_the_interpreter():
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    t = ag.tensor(x, device="interp")
    assert t.device == "interp" and str(t.device) == "interp" and t.device is get_device("interp")
    assert repr(t.device) == "device(type='interp')"
    assert (t * 2).device == "interp" and ag.zeros(3, device="interp").device == "interp"
    np.testing.assert_array_equal(t.numpy(), x)
    with ag.using_device("interp"):
        assert ag.tensor([1.0]).device == "interp" and ag.randn(2).device == "interp"
        assert ag.tensor([1.0], device="cpu").device == "cpu"


def test_moving_between_devices_keeps_values_and_gradients():
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    t = ag.tensor(x, device="interp", requires_grad=True)
    c = t.to("cpu")
    assert c.device == "cpu"
    back = (c * 3).to("interp")
    assert back.device == "interp"
    np.testing.assert_array_equal(back.numpy(), x * 3)
    back.sum().backward()
    assert t.grad.device == "interp"
    np.testing.assert_array_equal(t.grad.numpy(), np.full_like(x, 3))


def test_mixing_devices_is_a_clear_error():
    a = ag.tensor([1.0, 2.0], device="interp")
    b = ag.tensor([3.0, 4.0], device="cpu")
    for fn in (lambda: a + b, lambda: b * a, lambda: ag.where(a > 1, a, b)):
        with pytest.raises(RuntimeError, match="same device") as err:
            fn().numpy()
        assert "'interp'" in str(err.value) and "'cpu'" in str(err.value)
    np.testing.assert_array_equal((a + b.to("interp")).numpy(), [4.0, 6.0])


def test_helpers_follow_the_tensor_away_from_the_default_device():
    with ag.using_device("cpu"):
        a = RNG.standard_normal((3, 4))
        x = ag.tensor(a, device="interp", requires_grad=True)
        assert x.argmax(1).device == "interp" and x.max(1)[1].device == "interp"
        np.testing.assert_array_equal(x.argmax(1).numpy(), a.argmax(1))
        np.testing.assert_array_equal(x.min(1)[0].numpy(), a.min(1))
        assert ag.nn.functional.dropout(x, 0.5, training=True).device == "interp"
        y = x * 2
        y.backward(np.ones((3, 4)))
        assert x.grad.device == "interp"


def test_buffer_methods():
    dev = get_device("interp")
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    buf = dev.from_host(a)
    assert dev.owns(buf) and buf is not a and dev.address(buf) == buf.ctypes.data
    host = dev.to_host(buf)
    host[0, 0] = -1
    assert buf[0, 0] == 0
    out = dev.empty((3, 4), np.float64)
    dev.copy(out, buf)
    np.testing.assert_array_equal(out, a)
    dev.fill(out, 2.5)
    assert (out == 2.5).all()
    np.testing.assert_array_equal(dev.strided(buf, View((2, 2), (-4, 2), 9)), a[2::-1, 1::2][:2])


def test_reads_through_masks_and_out_of_bounds():
    flat = np.arange(5, dtype=np.float32)
    padded = View.make((9,), (1,), -2, ((2, 7),))  # pad by 2 both sides: offsets -2..6 are masked
    np.testing.assert_array_equal(read(flat, padded), [0, 0, 0, 1, 2, 3, 4, 0, 0])
    with pytest.raises(IndexError, match="reads elements"):
        read(flat, View((6,), (1,), 0))


@pytest.mark.parametrize("device", ["cpu", "interp"])
def test_in_place_assign(device):
    x = np.arange(10, dtype=np.float32)
    t = ag.tensor(x, device=device)
    t.assign(t * 2 + 1)                 # reads its target where it writes
    t.assign(t.flip(0) + t[:1])          # reads its target elsewhere: through a copy
    expected = (x * 2 + 1)[::-1] + 1
    np.testing.assert_array_equal(t.numpy(), expected)


def test_jit_capture_replays_on_the_interpreter():
    w = ag.tensor(RNG.standard_normal((5, 3)).astype(np.float32), device="interp")
    f = ag.jit(lambda x: (x @ w).tanh().softmax(-1).cumsum(-1))
    for _ in range(3):
        x = RNG.standard_normal((4, 5)).astype(np.float32)
        got = f(ag.tensor(x, device="interp"))
        assert got.device == "interp"
        ref = (ag.tensor(x) @ ag.tensor(w.numpy())).tanh().softmax(-1).cumsum(-1)
        np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_matches_the_cpu(dtype):
    """The CPU runs Adam as one fused kernel; the interpreter, as tensor ops."""
    X = RNG.standard_normal((16, 5)).astype(dtype)
    Y = np.sin(X[:, :2])
    W = [RNG.standard_normal((5, 8)).astype(dtype), RNG.standard_normal((8, 2)).astype(dtype)]
    result = {}
    for device in ("cpu", "interp"):
        ps = [Parameter(ag.tensor(w, device=device)) for w in W]
        opt = Adam(ps, lr=0.01, weight_decay=0.01)
        x, y = ag.tensor(X, device=device), ag.tensor(Y, device=device)
        for _ in range(5):
            opt.zero_grad()
            (((x @ ps[0]).tanh() @ ps[1] - y) ** 2).mean().backward()
            opt.step()
        assert all(p.device == device for p in ps)
        result[device] = [p.numpy() for p in ps]
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for mine, cpu in zip(result["interp"], result["cpu"]):
        np.testing.assert_allclose(mine, cpu, rtol=rtol, atol=rtol)


def test_module_to_the_interpreter():
    layer = nn.Linear(6, 3)
    x = RNG.standard_normal((4, 6)).astype(np.float32)
    ref = layer(ag.tensor(x)).numpy()
    layer.to("interp")
    out = layer(ag.tensor(x, device="interp"))
    assert out.device == "interp" and all(p.device == "interp" for p in layer.parameters())
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-6, atol=1e-6)
