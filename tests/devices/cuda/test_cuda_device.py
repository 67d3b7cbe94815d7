"""The CUDA device: every result is compared with the same program on the CPU.

Tests marked ``gpu`` need CuPy and an NVIDIA GPU and run with ``pytest --gpu``.
"""
import importlib.util

import numpy as np
import pytest

import audiograd as ag

gpu = pytest.mark.gpu
RNG = np.random.default_rng(0)


def _randn(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def _both(fn, *arrays, rtol=1e-5, atol=1e-6):
    """Run ``fn`` on CPU tensors and on CUDA tensors made from ``arrays``; compare the results."""
    ref = fn(*[ag.tensor(a, device="cpu") for a in arrays])
    out = fn(*[ag.tensor(a, device="cuda") for a in arrays])
    assert out.device == "cuda"
    got = out.numpy()
    assert got.dtype == ref.numpy().dtype and got.shape == tuple(ref.shape)
    np.testing.assert_allclose(got, ref.numpy(), rtol=rtol, atol=atol)
    return got


def test_cuda_without_cupy_or_gpu_is_a_clear_error():
    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed here")
    with pytest.raises(RuntimeError, match="CuPy"):
        ag.tensor([1.0, 2.0], device="cuda")
    with pytest.raises(RuntimeError, match="CuPy"):
        ag.ones(3).to("cuda")
    with pytest.raises(RuntimeError, match="CuPy"):
        ag.zeros(2, device="cuda")


def test_unknown_devices_are_errors():
    with pytest.raises(RuntimeError, match="unknown device"):
        ag.tensor([1.0], device="tpu")
    assert ag.tensor([1.0], device="cpu").device == "cpu"
    assert ag.ones(2).cpu().device == "cpu"


UNARY = [
    lambda x: -x, lambda x: x.exp(), lambda x: (x.abs() + 1).log(), lambda x: x.abs().log1p(), lambda x: x.sin(),
    lambda x: x.cos(), lambda x: x.abs().sqrt(), lambda x: x.tanh(), lambda x: x.sigmoid(), lambda x: x.erf(),
    lambda x: x.abs(), lambda x: x.sign(), lambda x: x.relu(), lambda x: x.softplus(), lambda x: x.clamp(-0.5, 0.5),
    lambda x: (x.abs() + 0.5).reciprocal(), lambda x: x.abs() ** 1.7,
]
BINARY = [
    lambda x, y: x + y, lambda x, y: x - 2 * y, lambda x, y: x * y, lambda x, y: x / (y.abs() + 1),
    lambda x, y: x.maximum(y), lambda x, y: x.minimum(y), lambda x, y: x.atan2(y), lambda x, y: ag.where(x > y, x, y),
    lambda x, y: (x < y).float() + (x >= y).float() * 3, lambda x, y: ((x > 0) & (y > 0)) | (x < -1),
]


@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elementwise_ops(dtype):
    a, b = _randn(37, 129, dtype=dtype), _randn(37, 129, dtype=dtype)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for fn in UNARY:
        _both(fn, a, **tol)
    for fn in BINARY:
        _both(fn, a, b, **tol)


@gpu
def test_integer_bool_and_cast_ops():
    i = RNG.integers(-50, 50, (5, 300)).astype(np.int64)
    j = RNG.integers(1, 9, (5, 300)).astype(np.int32)
    _both(lambda x, y: x * 3 + y - x.abs(), i, j)
    _both(lambda x, y: (x.float() / y).to(ag.int32), i, j)
    _both(lambda x: x.sum(1), i)
    _both(lambda x: x.amax(), j)
    _both(lambda x: (x > 0).sum(), i)
    _both(lambda x: (x > 3).logical_not(), i)
    _both(lambda x: x.float() * 0.5 + x.double(), i)


@gpu
def test_nan_and_inf_propagate_like_the_cpu():
    a = np.array([[1.0, np.nan, -np.inf], [np.inf, 2.0, 0.0]], np.float32)
    _both(lambda x: x.maximum(0.5), a)
    _both(lambda x: x.amax(1), a)
    _both(lambda x: x * 0 + 1, a)
    _both(lambda x: (x + float("inf")).minimum(3), a)


@gpu
def test_broadcasting_views_and_padding():
    a, b, c = _randn(8, 1, 33), _randn(1, 5, 33), _randn(33, 8)
    _both(lambda x, y: x * y + 1, a, b)
    _both(lambda x, y: x[:, :, ::2][..., :16] - y[..., 1::2], a, b)
    _both(lambda x: x.permute(2, 0, 1).reshape(33, 8) * 2, a)
    _both(lambda x, y: x.squeeze(1) + y.T, a, c)
    _both(lambda x: ag.nn.functional.pad(x, (3, 4)) + 1, a)
    _both(lambda x: x.flip(-1)[:, :, 3:-3], a)
    _both(lambda x: x.expand(8, 4, 33).contiguous(), a)
    _both(lambda x, y: ag.cat([x.expand(8, 5, 33), y.expand(8, 5, 33)], 1), a, b)
    _both(lambda x, y: ag.stack([x[:, 0], y[0, 0].expand(8, 33)], 0), a, b)
    _both(lambda x: x.unfold(2, 5, 3).sum(-1), a)


@gpu
@pytest.mark.parametrize("shape,axes", [((7, 4100), 1), ((4100, 7), 0), ((3, 64, 200), (0, 2)), ((9, 10), 1),
                                        ((1 << 16,), 0), ((5, 6, 7), (0, 1, 2)), ((300, 3), 0)])
def test_reductions_long_and_short(shape, axes):
    a = _randn(*shape)
    for keepdim in (False, True):
        _both(lambda x: x.sum(axes, keepdim=keepdim), a, rtol=1e-5, atol=1e-4)
        _both(lambda x: x.amax(axes, keepdim=keepdim), a)
    _both(lambda x: x.mean(axes), a, rtol=1e-5, atol=1e-5)
    _both(lambda x: (x.exp() * 2).sum(axes) + x.sum(), a, rtol=1e-5, atol=1e-3)
    _both(lambda x: x.softmax(-1), a)


@gpu
def test_cumsum():
    a = _randn(6, 1000)
    _both(lambda x: x.cumsum(1), a, rtol=1e-5, atol=1e-4)
    _both(lambda x: x.cumsum(0), a, rtol=1e-5, atol=1e-4)
    _both(lambda x: (x * 2).cumsum(-1)[:, ::7], a, rtol=1e-5, atol=1e-4)


@gpu
def test_matmul():
    a, b, c = _randn(65, 33), _randn(33, 17), _randn(4, 17, 33)
    _both(lambda x, y: x @ y, a, b, rtol=1e-4, atol=1e-4)
    _both(lambda x, y: x.T.contiguous().T @ y, a, b, rtol=1e-4, atol=1e-4)
    _both(lambda x, z: z @ x.T, a, c, rtol=1e-4, atol=1e-4)
    _both(lambda x, y: x[0] @ y, a, b, rtol=1e-4, atol=1e-4)
    _both(lambda x, y: (x @ y).relu().sum(0), a, b, rtol=1e-4, atol=1e-4)
    _both(lambda x, y: x.double() @ y.double(), a, b, rtol=1e-12, atol=1e-12)


def _mlp(device, arrays):
    params = [ag.tensor(p, device=device, requires_grad=True) for p in arrays[:4]]
    x, y = (ag.tensor(a, device=device) for a in arrays[4:])
    w1, b1, w2, b2 = params
    h = (x @ w1 + b1).tanh()
    loss = ((h @ w2 + b2 - y) ** 2).mean()
    loss.backward()
    return loss, params


@gpu
def test_mlp_autograd_matches_cpu():
    arrays = [_randn(16, 32) * 0.3, _randn(32) * 0.1, _randn(32, 4) * 0.3, _randn(4) * 0.1, _randn(64, 16), _randn(64, 4)]
    loss_c, params_c = _mlp("cpu", arrays)
    loss_g, params_g = _mlp("cuda", arrays)
    np.testing.assert_allclose(loss_g.item(), loss_c.item(), rtol=1e-5)
    for pg, pc in zip(params_g, params_c):
        assert pg.grad.device == "cuda"
        np.testing.assert_allclose(pg.grad.numpy(), pc.grad.numpy(), rtol=1e-4, atol=1e-6)
    # a plain SGD step through assign runs on the device too
    w = params_g[0]
    before = w.numpy()
    w.assign(w.detach() - 0.1 * w.grad)
    np.testing.assert_allclose(w.numpy(), before - 0.1 * params_c[0].grad.numpy(), rtol=1e-5, atol=1e-6)


@gpu
def test_moving_between_devices():
    a = _randn(3, 4)
    x = ag.tensor(a, requires_grad=True, device="cpu")
    g = x.cuda()
    assert g.device == "cuda" and x.device == "cpu"
    assert g.to("cuda") is g and x.to("cpu") is x
    np.testing.assert_array_equal(g.numpy(), a)
    back = (g * 3).cpu()
    assert back.device == "cpu"
    back.sum().backward()  # the gradient flows back through both copies
    np.testing.assert_allclose(x.grad.numpy(), np.full_like(a, 3))
    assert ag.zeros(2, 3, device="cuda").device == "cuda"
    assert ag.arange(5, device="cuda").numpy().tolist() == [0, 1, 2, 3, 4]
    assert ag.zeros_like(g).device == "cuda"
    np.testing.assert_array_equal((ag.ones(3, device="cuda") * 2).numpy(), [2, 2, 2])
    h = ag.tensor(a).to("cuda", ag.float64)
    assert h.device == "cuda" and h.dtype is ag.float64
    assert float((g + ag.full((), 1.0)).sum()) == pytest.approx(float(a.sum() + 12), rel=1e-5)


@gpu
def test_mixing_devices_is_a_clear_error():
    c, g = ag.tensor([1.0, 2.0, 3.0], device="cpu"), ag.ones(3, device="cuda")
    with pytest.raises(RuntimeError, match="same device"):
        c + g
    with pytest.raises(RuntimeError, match="same device"):
        ag.ones(3, device="cpu") + g
    # constants made without a device follow the tensors they meet
    np.testing.assert_array_equal((ag.ones(3) + g).numpy(), [2, 2, 2])
    with pytest.raises(RuntimeError, match="same device"):
        ag.tensor(np.ones((2, 3), np.float32), device="cpu") @ ag.ones(3, 2, device="cuda")


@gpu
def test_conv1d_and_conv_transpose1d():
    x, w = _randn(2, 8, 50), _randn(6, 8, 5)
    _both(lambda a, b: ag.nn.functional.conv1d(a, b, padding=2), x, w, rtol=1e-4, atol=1e-4)
    _both(lambda a, b: ag.nn.functional.conv_transpose1d(a, b.transpose(0, 1).contiguous(), stride=2), x, w,
          rtol=1e-4, atol=1e-4)


def _small_net():
    ag.manual_seed(0)
    return ag.nn.Sequential(ag.nn.Conv1d(3, 8, 5, padding=2), ag.nn.Tanh(), ag.nn.Conv1d(8, 2, 3, dilation=2))


@gpu
def test_module_to_cuda_keeps_parameters_and_an_optimizer_built_before():
    net, ref = _small_net().to("cpu"), _small_net().to("cpu")
    params = list(net.parameters())
    opt = ag.optim.Adam(net.parameters(), lr=1e-2)
    net.to("cuda")
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]
    assert all(p.device == "cuda" for p in net.parameters())
    ref_opt = ag.optim.Adam(ref.parameters(), lr=1e-2)
    x = _randn(2, 3, 40)
    for _ in range(3):
        for model, o, dev in ((net, opt, "cuda"), (ref, ref_opt, "cpu")):
            o.zero_grad()
            loss = (model(ag.tensor(x, device=dev)) ** 2).mean()
            loss.backward()
            o.step()
    for p, q in zip(net.parameters(), ref.parameters()):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-4, atol=1e-5)
    net.cpu()
    assert all(p.device == "cpu" for p in net.parameters())


@gpu
def test_jit_on_cuda_replays_as_a_cuda_graph():
    w = ag.tensor(_randn(16, 16), device="cuda")

    @ag.jit
    def f(x):
        return ((x @ w).sin() * 2).sum(1)

    xs = [_randn(8, 16) for _ in range(5)]
    for a in xs:
        got = f(ag.tensor(a, device="cuda"))
        assert got.device == "cuda"
        np.testing.assert_allclose(got.numpy(), (np.sin(a @ w.numpy()) * 2).sum(1), rtol=1e-4, atol=1e-4)
    (captured,) = f.programs.values()
    assert captured.graph is not None and captured.graph.graph is not None, "replays did not become a CUDA graph"
    with pytest.raises(RuntimeError, match="same device"):  # a CPU argument is a new signature
        f(ag.tensor(xs[0], device="cpu"))


@gpu
def test_jit_training_step_on_cuda_matches_eager_cpu():
    arrays = [_randn(16, 32) * 0.3, _randn(32, 4) * 0.3]

    def make(device):
        ps = [ag.tensor(a, device=device, requires_grad=True) for a in arrays]
        return ps, ag.optim.Adam(ps, lr=1e-2)

    def step(ps, opt, x, y):
        opt.zero_grad()
        loss = (((x @ ps[0]).tanh() @ ps[1] - y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss

    pg, og = make("cuda")
    pc, oc = make("cpu")
    run = ag.jit(lambda x, y: step(pg, og, x, y))
    for i in range(6):
        x, y = _randn(64, 16), _randn(64, 4)
        lg = run(ag.tensor(x, device="cuda"), ag.tensor(y, device="cuda"))
        lc = step(pc, oc, ag.tensor(x, device="cpu"), ag.tensor(y, device="cpu"))
        np.testing.assert_allclose(lg.item(), lc.item(), rtol=1e-4)
    for a, b in zip(pg, pc):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)


@gpu
def test_default_device():
    before = ag.config.default_device
    try:
        ag.set_default_device("cuda")
        t = ag.tensor([1.0, 2.0])
        assert t.device == "cuda" and ag.zeros(3).device == "cuda"
        assert ag.tensor([1.0], device="cpu").device == "cpu"
        ag.set_default_device("cpu")
        assert ag.tensor([1.0]).device == "cpu"
    finally:
        ag.set_default_device(before)


@gpu
@pytest.mark.parametrize("kw", [dict(momentum=0.9, nesterov=True, weight_decay=1e-2), dict(momentum=0.5, dampening=0.1)])
def test_sgd_on_cuda_matches_cpu_and_follows_the_lr(kw):
    a = _randn(40, 7)
    params = {d: ag.tensor(a, device=d, requires_grad=True) for d in ("cpu", "cuda")}
    opts = {d: ag.optim.SGD([p], lr=0.1, **kw) for d, p in params.items()}
    for step in range(5):
        g = _randn(40, 7)
        for d, p in params.items():
            p.grad = ag.tensor(g, device=d)
            opts[d].param_groups[0]["lr"] = 0.1 / (step + 1)
            opts[d].step()
    assert params["cuda"].device == "cuda"
    np.testing.assert_allclose(params["cuda"].numpy(), params["cpu"].numpy(), rtol=1e-5, atol=1e-6)
    sd = opts["cuda"].state_dict()
    fresh = ag.optim.SGD([params["cuda"]], lr=0.1, **kw)
    fresh.load_state_dict(sd)
    assert fresh.state[params["cuda"]]["momentum_buffer"].device == "cuda"


def test_size_classes_bound_the_waste_and_merge_nearby_sizes():
    from audiograd.devices.cuda.device import size_class
    for n in (1 << 20, (1 << 20) + 1, 3 * 2 ** 28 + 5, 1074266112):
        c = size_class(n)
        assert n <= c <= n * 1.0625 + (1 << 16)
    assert size_class(1074266112) == size_class(1074266112 + 352)  # padded rows share a block


@gpu
def test_large_buffers_reuse_pool_blocks_of_their_class():
    import cupy as cp
    from audiograd.devices.cuda.device import get_device
    dev, pool = get_device(), cp.get_default_memory_pool()
    from audiograd.devices.cuda.device import size_class
    a = dev.empty((3, 1000, 1000), np.float32)
    assert a.shape == (3, 1000, 1000) and a.dtype == np.float32 and a.flags.c_contiguous
    a[...] = 1.0
    assert float(a.sum()) == 3 * 1000 * 1000
    del a
    before = pool.total_bytes()
    for extra in range(5):  # slightly larger sizes of the same class fit the freed block
        assert size_class(12 * 1000 * (1000 + extra)) == size_class(12 * 1000 * 1000)
        b = dev.empty((3, 1000, 1000 + extra), np.float32)
        del b
    assert pool.total_bytes() == before


@gpu
@pytest.mark.parametrize("kind", ["swapped entry", "swapped cubin, forged record", "truncated", "not a cubin"])
def test_wrong_cubin_in_a_slot_is_rebuilt_not_run(tmp_path, kind):
    """A cubin that is not its entry's (copied from another slot, with or without its record),
    cut short or no cubin at all is rebuilt before anything of it runs."""
    import hashlib
    import json
    import shutil
    from audiograd.devices.cuda import device as rt
    dev = rt.get_device()
    saved = ag.config.cache_dir
    ag.config.cache_dir = tmp_path / "cache"
    try:
        x = ag.tensor(np.linspace(0, 1, 40, dtype=np.float32), device="cuda")
        dev._fns.clear()
        (x * 2 + 1).sin().numpy()
        [a] = sorted(ag.config.cache_dir.rglob("*.cubin"))
        (x * 3 - 1).cos().numpy()
        [b] = [p for p in ag.config.cache_dir.rglob("*.cubin") if p != a]
        # a copy of the cache: CuPy has never loaded its paths (as in a new process)
        copy = tmp_path / "copy"
        shutil.copytree(ag.config.cache_dir, copy)
        a, b = copy / a.relative_to(ag.config.cache_dir), copy / b.relative_to(ag.config.cache_dir)
        ag.config.cache_dir = copy
        if kind == "swapped entry":
            shutil.copy(a, b)
            shutil.copy(a.with_suffix(".json"), b.with_suffix(".json"))
        elif kind == "swapped cubin, forged record":
            shutil.copy(a, b)
            record = json.loads(b.with_suffix(".json").read_text())
            record.update(sha256=hashlib.sha256(b.read_bytes()).hexdigest(), size=b.stat().st_size)
            b.with_suffix(".json").write_text(json.dumps(record))
        elif kind == "truncated":
            b.write_bytes(b.read_bytes()[:200])
        else:
            b.write_bytes(b"\x7fELF not really a cubin")
            record = json.loads(b.with_suffix(".json").read_text())
            record.update(sha256=hashlib.sha256(b.read_bytes()).hexdigest(), size=b.stat().st_size)
            b.with_suffix(".json").write_text(json.dumps(record))
        dev._fns.clear()
        compiled, rejected = rt.stats.compiled, rt.stats.rejected
        want = np.cos(np.linspace(0, 1, 40) * 3 - 1)
        np.testing.assert_allclose((x * 3 - 1).cos().numpy(), want, rtol=1e-5, atol=1e-6)
        assert rt.stats.compiled == compiled + 1
        caught_at_load = kind in ("swapped cubin, forged record", "not a cubin")  # the record looked right
        assert rt.stats.rejected == rejected + caught_at_load
        assert json.loads(b.with_suffix(".json").read_text())["key"] == b.stem
        dev._fns.clear()
        np.testing.assert_allclose((x * 3 - 1).cos().numpy(), want, rtol=1e-5, atol=1e-6)
        assert rt.stats.compiled == compiled + 1  # the rebuilt entry is used as it is
        assert not list(copy.rglob("*.tmp"))
    finally:
        ag.config.cache_dir = saved
        dev._fns.clear()
