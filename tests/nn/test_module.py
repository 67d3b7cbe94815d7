"""Module, layers and weight norm: PyTorch state dicts load unchanged and give the same outputs."""
import importlib.util
import numpy as np
import pytest
import torch
import torch.nn as tnn
from torch.nn.utils import weight_norm as torch_weight_norm
from torch.nn.utils.parametrizations import weight_norm as torch_param_weight_norm

import audiograd as ag
from audiograd import nn


def small_net(lib, wn):
    """A conv network with weight norm, like an audio encoder/decoder block."""
    return lib.Sequential(
        wn(lib.Conv1d(2, 8, 7, padding=3)),
        lib.Tanh(),
        wn(lib.ConvTranspose1d(8, 4, 8, stride=4, padding=2)),
        lib.LeakyReLU(0.2),
        wn(lib.Conv1d(4, 4, 3, padding=2, dilation=2), dim=None),
        lib.Conv1d(4, 2, 3, padding=1, bias=False),
    )


TORCH_WN = {"legacy": torch_weight_norm, "parametrizations": torch_param_weight_norm}
OUR_WN = {"legacy": nn.utils.weight_norm, "parametrizations": nn.utils.parametrizations.weight_norm}


def state_of(module):
    return {k: v.detach().numpy() for k, v in module.state_dict().items()}


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("theirs", ["legacy", "parametrizations"])
@pytest.mark.parametrize("ours", ["legacy", "parametrizations"])
def test_torch_state_dict_loads_unchanged(theirs, ours):
    torch.manual_seed(0)
    ref = small_net(tnn, TORCH_WN[theirs])
    net = small_net(nn, OUR_WN[ours])
    sd = state_of(ref)
    if theirs == ours:
        assert list(net.state_dict()) == list(sd)
    net.load_state_dict(sd)
    x = np.random.default_rng(0).standard_normal((3, 2, 40)).astype(np.float32)
    np.testing.assert_allclose(net(ag.tensor(x)).numpy(), ref(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_weight_norm_gradients_match_torch():
    torch.manual_seed(1)
    ref = small_net(tnn, torch_weight_norm)
    net = small_net(nn, nn.utils.weight_norm)
    net.load_state_dict(state_of(ref))
    x = np.random.default_rng(1).standard_normal((2, 2, 24)).astype(np.float32)
    (ref(torch.tensor(x)) ** 2).sum().backward()
    (net(ag.tensor(x)) ** 2).sum().backward()
    theirs = dict(ref.named_parameters())
    for name, p in net.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), theirs[name].grad.numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=name)


def test_state_dict_round_trip_and_errors():
    net = small_net(nn, nn.utils.weight_norm)
    sd = state_of(net)
    other = small_net(nn, nn.utils.weight_norm)
    other.load_state_dict(sd)
    for k, v in state_of(other).items():
        np.testing.assert_array_equal(v, sd[k])
    partial = dict(sd)
    missing = partial.pop("0.bias")
    partial["extra.weight"] = missing
    with pytest.raises(KeyError, match=r"missing keys \['0.bias'\].*unexpected keys \['extra.weight'\]"):
        other.load_state_dict(partial)
    bad = dict(sd)
    bad["0.bias"] = np.zeros(3, np.float32)
    before = state_of(other)
    with pytest.raises(ValueError, match=r"0.bias: checkpoint \(3,\) vs model \(8,\)"):
        other.load_state_dict(bad)
    for k, v in state_of(other).items():  # nothing was half-written
        np.testing.assert_array_equal(v, before[k])
    missing_ok, unexpected = other.load_state_dict(partial, strict=False)
    assert missing_ok == ["0.bias"] and unexpected == ["extra.weight"]


def test_parameters_modes_and_zero_grad():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4, 1))
    names = [n for n, _ in net.named_parameters()]
    assert names == ["0.weight", "0.bias", "3.weight", "3.bias"]
    assert sum(p.numel() for p in net.parameters()) == 3 * 4 + 4 + 4 + 1
    net.eval()
    assert not any(m.training for m in net.modules())
    x = ag.tensor(np.ones((2, 3), np.float32))
    np.testing.assert_array_equal(net(x).numpy(), net(x).numpy())  # dropout is off in eval
    net.train()
    assert all(m.training for m in net.modules())
    net(x).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    params = list(net.parameters())
    net.to(ag.float64)
    assert all(p.dtype is ag.float64 for p in net.parameters())
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]  # identity kept, as in torch
    if importlib.util.find_spec("cupy") is None:
        with pytest.raises(RuntimeError, match="cuda"):
            net.to("cuda")


@pytest.mark.parametrize("make_ours,make_theirs", [
    (lambda: nn.Linear(5, 3), lambda: tnn.Linear(5, 3)),
    (lambda: nn.Conv2d(2, 4, (3, 2), stride=(2, 1), padding=1), lambda: tnn.Conv2d(2, 4, (3, 2), stride=(2, 1), padding=1)),
    (lambda: nn.ConvTranspose2d(2, 4, 3, stride=2, output_padding=1), lambda: tnn.ConvTranspose2d(2, 4, 3, stride=2, output_padding=1)),
    (lambda: nn.LayerNorm((4, 6)), lambda: tnn.LayerNorm((4, 6))),
    (lambda: nn.GroupNorm(2, 4), lambda: tnn.GroupNorm(2, 4)),
])
def test_layers_match_torch_with_same_weights(make_ours, make_theirs):
    torch.manual_seed(2)
    ref, ours = make_theirs(), make_ours()
    assert [k for k in ours.state_dict()] == [k for k in ref.state_dict()]
    ours.load_state_dict(state_of(ref))
    shape = {tnn.Linear: (3, 5), tnn.LayerNorm: (2, 3, 4, 6)}.get(type(ref), (2, 2, 7, 6) if not isinstance(ref, tnn.GroupNorm) else (2, 4, 5))
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(ours(ag.tensor(x)).numpy(), ref(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_default_init_bounds_follow_torch():
    conv = nn.Conv1d(16, 8, 5)
    bound = 1 / np.sqrt(16 * 5)
    w = conv.weight.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    snake = nn.SnakeBeta(6)
    np.testing.assert_array_equal(snake.alpha.numpy(), np.zeros(6))
    np.testing.assert_array_equal(nn.Snake(6).alpha.numpy(), np.ones((1, 6, 1)))


def test_parameters_of_one_module_never_share_a_buffer():
    for m in (nn.SnakeBeta(4), nn.SnakeBeta(4, alpha_logscale=False), nn.LayerNorm(4), nn.GroupNorm(2, 4)):
        state = {k: np.arange(v.numel(), dtype=np.float32).reshape(v.shape) + 10 * i
                 for i, (k, v) in enumerate(m.state_dict().items())}
        m.load_state_dict(state)
        for k, v in m.state_dict().items():
            np.testing.assert_array_equal(v.numpy(), state[k], err_msg=f"{type(m).__name__}.{k}")


def test_weight_norm_reuses_the_weight_only_while_g_and_v_are_unchanged():
    conv = nn.utils.weight_norm(nn.Conv1d(3, 4, 3))
    x = ag.tensor(np.random.default_rng(4).standard_normal((1, 3, 9)).astype(np.float32))
    with ag.no_grad():
        first = conv(x).numpy()
        assert conv.weight is conv.weight  # cached while nothing changes
        np.testing.assert_array_equal(conv(x).numpy(), first)
        conv.weight_g.assign(conv.weight_g * 2)
        np.testing.assert_allclose(conv(x).numpy() - conv.bias.numpy()[:, None],
                                   2 * (first - conv.bias.numpy()[:, None]), rtol=1e-5, atol=1e-6)
    # with gradients recorded, every access builds a fresh graph that reaches g and v
    conv(x).sum().backward()
    assert conv.weight_g.grad is not None and conv.weight_v.grad is not None
