"""Adam and AdamW on CUDA: the fused multi-tensor kernel against torch.optim, its launches and
allocations, recorded replays, CUDA graphs and state dicts.

The source and launcher tests run anywhere (the source is compiled when NVRTC is importable);
tests marked ``gpu`` need CuPy and an NVIDIA GPU and run with ``pytest --gpu``.
"""
import functools

import numpy as np
import pytest

import audiograd as ag
from audiograd import dtypes as dt
from audiograd.devices.cuda import adam as optim_cuda
from audiograd.devices.cuda.adam import FusedAdamLaunches, plan_launches, render_adam_cuda
from audiograd.graph import lazy
from audiograd.nn.module import Parameter
from audiograd.optim import Adam, AdamW, lr_scheduler
from nvrtc_check import compile_sm90

gpu = pytest.mark.gpu
# odd sizes: unaligned tails, a tensor smaller than a vector, one just over 32 chunks
SHAPES = [(1,), (3,), (1000,), (65537,), (33, 31)]
GRAD_SCALES = [1.0, 0.01, 1.0, 3.0, 1e-3]
HYPER = dict(beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, decoupled=False, amsgrad=False, maximize=False)


def _init(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def _grads(dtype, steps, seed=1):
    """Per step, per tensor: a gradient, or None (tensor 1 sits out every third step)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(steps):
        out.append([None if (k == 1 and i % 3 == 2) else (rng.standard_normal(s) * c).astype(dtype)
                    for k, (s, c) in enumerate(zip(SHAPES, GRAD_SCALES))])
    return out


def _cuda_params(arrays):
    return [Parameter(ag.tensor(a, device="cuda")) for a in arrays]


def _set_grads(ps, grads):
    for p, g in zip(ps, grads):
        p.grad = None if g is None else ag.tensor(g, device="cuda")


def _run_ag(make_opt, dtype, steps, sched=None):
    ps = _cuda_params(_init(dtype))
    opt = make_opt(ps)
    s = sched(opt) if sched else None
    for grads in _grads(dtype, steps):
        _set_grads(ps, grads)
        opt.step()
        if s:
            s.step()
    return ps, opt


def _run_torch(make_opt, dtype, steps, sched=None):
    torch = pytest.importorskip("torch")
    ps = [torch.tensor(a, requires_grad=True) for a in _init(dtype)]
    opt = make_opt(ps)
    s = sched(opt) if sched else None
    for grads in _grads(dtype, steps):
        for p, g in zip(ps, grads):
            p.grad = None if g is None else torch.tensor(g)
        opt.step()
        if s:
            s.step()
    return ps, opt


def _tol(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)


def _assert_matches_torch(ps, opt, tps, topt, dtype):
    tstate = topt.state_dict()["state"]
    for i, (p, tp) in enumerate(zip(ps, tps)):
        assert p.device == "cuda"
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), **_tol(dtype))
        st = opt.state[p]
        assert all(v.device == "cuda" for v in st.values() if isinstance(v, ag.Tensor))
        assert st["step"].item() == float(tstate[i]["step"])
        for k in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            if k in tstate[i]:
                np.testing.assert_allclose(st[k].numpy(), tstate[i][k].numpy(), **_tol(dtype))


def _torch_optim(name):
    return lambda *a, **k: getattr(pytest.importorskip("torch").optim, name)(*a, foreach=False, **k)


CASES = {
    "adam": (lambda p: Adam(p, lr=1e-2), lambda p: _torch_optim("Adam")(p, lr=1e-2)),
    "adam_amsgrad": (lambda p: Adam(p, lr=1e-2, amsgrad=True),
                     lambda p: _torch_optim("Adam")(p, lr=1e-2, amsgrad=True)),
    "adam_wd": (lambda p: Adam(p, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
                lambda p: _torch_optim("Adam")(p, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    "adam_maximize": (lambda p: Adam(p, lr=1e-2, maximize=True, weight_decay=0.05),
                      lambda p: _torch_optim("Adam")(p, lr=1e-2, maximize=True, weight_decay=0.05)),
    "adam_low_beta1": (lambda p: Adam(p, lr=1e-2, betas=(0.3, 0.9)),
                       lambda p: _torch_optim("Adam")(p, lr=1e-2, betas=(0.3, 0.9))),
    "adamw": (lambda p: AdamW(p, lr=1e-2), lambda p: _torch_optim("AdamW")(p, lr=1e-2)),
    "adamw_amsgrad_maximize": (
        lambda p: AdamW(p, lr=1e-2, weight_decay=0.1, amsgrad=True, maximize=True),
        lambda p: _torch_optim("AdamW")(p, lr=1e-2, weight_decay=0.1, amsgrad=True, maximize=True)),
}


# ---- anywhere: source and launcher ----------------------------------------------------------
@pytest.mark.parametrize("ctype", ["float", "double"])
@pytest.mark.parametrize("options", [HYPER, dict(HYPER, beta1=0.3, weight_decay=0.1, decoupled=True, amsgrad=True,
                                                 maximize=True)])
def test_source_renders_and_compiles_for_sm90(ctype, options):
    sizes = [int(np.prod(s)) for s in SHAPES]
    src, launch = render_adam_cuda("adam_test", ctype, sizes, **options)
    chunk = optim_cuda.chunk_for(sizes)
    assert launch.block == optim_cuda.THREADS
    assert launch.grid == sum(-(-n // chunk) for n in sizes)
    assert 'extern "C" __global__' in src and "adam_test(" in src
    assert len(compile_sm90(src, "adam_test.cu")) > 0


def test_source_rejects_empty_tensors_and_other_dtypes():
    with pytest.raises(ValueError, match="non-empty"):
        render_adam_cuda("k", "float", [3, 0], **HYPER)
    with pytest.raises(ValueError, match="non-empty"):
        render_adam_cuda("k", "int", [3], **HYPER)


@pytest.mark.parametrize("n,per", [(1, 5), (5, 6), (666, 6), (667, 6), (2000, 5)])
def test_launch_plan_covers_every_tensor_within_the_argument_space(n, per):
    ranges = plan_launches(n, per)
    assert [a for a, _ in ranges] == [0] + [b for _, b in ranges[:-1]] and ranges[-1][1] == n
    assert all(8 * (optim_cuda.HEAD + (b - a) * per) <= optim_cuda.MAX_ARG_BYTES for a, b in ranges)
    assert len(ranges) == -(-n // ((optim_cuda.MAX_ARG_BYTES // 8 - optim_cuda.HEAD) // per))


def test_chunks_grow_with_the_work():
    assert optim_cuda.chunk_for([1, 3, 1000]) == optim_cuda.MIN_CHUNK
    assert optim_cuda.chunk_for([10 ** 7]) == 4096
    assert optim_cuda.chunk_for([10 ** 9]) == optim_cuda.MAX_CHUNK


class _Ptr:
    def __init__(self, ptr):
        self.ptr = ptr


class _Buf:
    def __init__(self, ptr):
        self.data = _Ptr(ptr)


def test_launcher_packs_pointers_per_launch_and_repacks_only_when_they_move(monkeypatch):
    monkeypatch.setattr(optim_cuda, "MAX_ARG_BYTES", 8 * (optim_cuda.HEAD + 2 * 5))
    ranges = plan_launches(3, 5)
    assert ranges == [(0, 2), (2, 3)]
    calls = []
    kernels = [functools.partial(lambda k, args: calls.append((k, args[0])), k) for k in range(2)]
    launcher = FusedAdamLaunches(kernels, ranges, 5, _Buf(4096))
    bufs = [_Buf(1000 + 8 * i) for i in range(3 * 5 + 1)]
    launcher(bufs)
    assert [k for k, _ in calls] == [0, 1]
    words = [np.frombuffer(a.tobytes(), np.uint64).tolist() for _, a in calls]
    lr = bufs[-1].data.ptr
    assert words[0] == [4096, lr] + [b.data.ptr for b in bufs[:10]]
    assert words[1] == [4100, lr] + [b.data.ptr for b in bufs[10:15]]
    packed = launcher._args
    launcher(list(bufs))
    assert launcher._args is packed
    bufs[3] = _Buf(99999)
    launcher(bufs)
    assert launcher._args is not packed
    assert np.frombuffer(calls[-2][1].tobytes(), np.uint64)[2 + 3] == 99999


# ---- on the GPU ------------------------------------------------------------------------------
@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(CASES))
def test_trajectory_matches_torch(name, dtype):
    mine, theirs = CASES[name]
    ps, opt = _run_ag(mine, dtype, 100)
    tps, topt = _run_torch(theirs, dtype, 100)
    _assert_matches_torch(ps, opt, tps, topt, dtype)


@gpu
@pytest.mark.parametrize("name", ["adam_amsgrad", "adamw"])
def test_lr_schedule_is_followed(name):
    mine, theirs = CASES[name]
    torch = pytest.importorskip("torch")
    ps, opt = _run_ag(mine, np.float32, 40, sched=lambda o: lr_scheduler.StepLR(o, step_size=7, gamma=0.3))
    tps, topt = _run_torch(theirs, np.float32, 40, sched=lambda o: torch.optim.lr_scheduler.StepLR(o, 7, 0.3))
    _assert_matches_torch(ps, opt, tps, topt, np.float32)


@gpu
def test_groups_and_mixed_dtypes():
    torch = pytest.importorskip("torch")
    a32, a64 = _init(np.float32), _init(np.float64, seed=5)
    ps = _cuda_params(a32) + _cuda_params(a64)
    opt = AdamW([{"params": ps[:7]}, {"params": ps[7:], "lr": 3e-3, "amsgrad": True}], lr=1e-2)
    tps = [torch.tensor(a, requires_grad=True) for a in a32 + a64]
    topt = torch.optim.AdamW([{"params": tps[:7]}, {"params": tps[7:], "lr": 3e-3, "amsgrad": True}], lr=1e-2,
                             foreach=False)
    for g32, g64 in zip(_grads(np.float32, 30), _grads(np.float64, 30, seed=7)):
        _set_grads(ps, g32 + g64)
        for p, g in zip(tps, g32 + g64):
            p.grad = None if g is None else torch.tensor(g)
        opt.step()
        topt.step()
    for p, tp in zip(ps, tps):
        assert p.dtype is (dt.float32 if tp.dtype == torch.float32 else dt.float64)
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), **_tol(p.dtype.np))


def _count_launches(monkeypatch):
    from audiograd.devices.cuda import device as cuda
    launches = []
    real = cuda.CudaKernel.__call__

    def counted(self, bufs):
        launches.append(self)
        return real(self, bufs)
    monkeypatch.setattr(cuda.CudaKernel, "__call__", counted)
    return launches


@gpu
def test_one_launch_per_dtype_and_no_allocation_after_the_first_step(monkeypatch):
    import cupy as cp
    from audiograd.devices.cuda import device as cuda
    ps = _cuda_params(_init(np.float32)) + _cuda_params(_init(np.float64))
    opt = AdamW(ps, lr=1e-3, amsgrad=True)
    sched = lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    _set_grads(ps, _grads(np.float32, 1)[0] + _grads(np.float64, 1)[0])
    opt.step()
    sched.step()
    launches = _count_launches(monkeypatch)
    pool = cp.get_default_memory_pool()
    cp.cuda.Device().synchronize()
    used, compiled = pool.used_bytes(), (cuda.stats.compiled, cuda.stats.loaded)
    bufs = [p.node.base.buffer for p in ps]
    state = [v.node.base.buffer.data.ptr for p in ps for v in opt.state[p].values()]
    for _ in range(6):  # the learning rate changes every other step
        launches.clear()
        opt.step()
        sched.step()
        assert len(launches) == 2  # one per dtype
    cp.cuda.Device().synchronize()
    assert pool.used_bytes() == used
    assert (cuda.stats.compiled, cuda.stats.loaded) == compiled
    assert all(p.node.base.buffer is b for p, b in zip(ps, bufs))
    assert [v.node.base.buffer.data.ptr for p in ps for v in opt.state[p].values()] == state
    assert all(opt.state[p]["step"].item() == 7 for p in ps)


@gpu
def test_pointers_past_the_argument_space_split_into_more_launches(monkeypatch):
    monkeypatch.setattr(optim_cuda, "MAX_ARG_BYTES", 8 * (optim_cuda.HEAD + 2 * 6))  # two tensors a launch
    mine, theirs = CASES["adamw_amsgrad_maximize"]
    ps, opt = _run_ag(mine, np.float32, 20)
    tps, topt = _run_torch(theirs, np.float32, 20)
    _assert_matches_torch(ps, opt, tps, topt, np.float32)
    for p in ps:
        p.grad = ag.tensor(np.zeros(p.shape, np.float32), device="cuda")
    launches = _count_launches(monkeypatch)
    opt.step()
    assert len(launches) == 3


def _unaligned(a):
    """A CUDA tensor over a buffer that starts one element past an aligned one."""
    from audiograd.devices.cuda.device import get_device
    cp = get_device().cp
    buf = cp.empty(a.size + 1, a.dtype)[1:].reshape(a.shape)
    buf[...] = cp.asarray(a)
    assert buf.data.ptr % 16 and buf.flags.c_contiguous
    return ag.Tensor(lazy.buffer_node(buf, dt.to_dtype(a.dtype), get_device()))


@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unaligned_buffers_take_the_element_path(dtype):
    mine, theirs = CASES["adam_amsgrad"]
    init = _init(dtype)
    ps = [Parameter(_unaligned(a)) if i in (2, 3) else Parameter(ag.tensor(a, device="cuda"))
          for i, a in enumerate(init)]
    opt = mine(ps)
    for grads in _grads(dtype, 30):
        for i, (p, g) in enumerate(zip(ps, grads)):
            p.grad = None if g is None else _unaligned(g) if i == 4 else ag.tensor(g, device="cuda")
        opt.step()
    tps, topt = _run_torch(theirs, dtype, 30)
    _assert_matches_torch(ps, opt, tps, topt, dtype)


@gpu
def test_tensor_op_path_on_cuda_keeps_state_and_lr_on_the_device(monkeypatch):
    from audiograd.optim import adam
    monkeypatch.setattr(adam, "_plain_buffer", lambda t: None)
    mine, theirs = CASES["adamw_amsgrad_maximize"]
    torch = pytest.importorskip("torch")
    ps, opt = _run_ag(mine, np.float32, 12, sched=lambda o: lr_scheduler.StepLR(o, step_size=5, gamma=0.5))
    tps, topt = _run_torch(theirs, np.float32, 12, sched=lambda o: torch.optim.lr_scheduler.StepLR(o, 5, 0.5))
    _assert_matches_torch(ps, opt, tps, topt, np.float32)


@gpu
@pytest.mark.parametrize("name", ["adam_amsgrad", "adamw"])
def test_state_dict_round_trip(name):
    mine, _ = CASES[name]
    grads = _grads(np.float32, 10)
    ps = _cuda_params(_init(np.float32))
    opt = mine(ps)
    for g in grads[:5]:
        _set_grads(ps, g)
        opt.step()
    sd = opt.state_dict()
    assert sorted(sd["state"]) == list(range(len(SHAPES)))
    assert all(isinstance(v, np.ndarray) for s in sd["state"].values() for v in s.values() if v is not None)
    assert [s["step"].shape for s in sd["state"].values()] == [()] * len(SHAPES)
    assert [float(s["step"]) for s in sd["state"].values()] == [5, 4, 5, 5, 5]  # tensor 1 sat out once
    ps2 = _cuda_params([p.numpy() for p in ps])
    opt2 = mine(ps2)
    opt2.load_state_dict(sd)
    for p in ps2:
        assert all(v.device == "cuda" for v in opt2.state[p].values() if isinstance(v, ag.Tensor))
    for g in grads[5:]:
        _set_grads(ps, g)
        _set_grads(ps2, g)
        opt.step()
        opt2.step()
    for p, p2 in zip(ps, ps2):
        np.testing.assert_array_equal(p.numpy(), p2.numpy())
        assert opt2.state[p2]["step"].item() == opt.state[p]["step"].item()


@gpu
def test_state_follows_parameters_moved_to_cuda_after_steps_on_the_cpu():
    mine, theirs = CASES["adamw_amsgrad_maximize"]
    net = ag.nn.Linear(33, 31)
    with_grads = list(net.parameters())
    opt = mine(with_grads)
    init = [p.numpy() for p in with_grads]
    rng = np.random.default_rng(4)
    grads = [[rng.standard_normal(p.shape).astype(np.float32) for p in with_grads] for _ in range(6)]
    for i, g in enumerate(grads):
        if i == 3:
            net.to("cuda")
        for p, gi in zip(with_grads, g):
            p.grad = ag.tensor(gi, device=p.device)
        opt.step()
    assert all(p.device == "cuda" and opt.state[p]["exp_avg"].device == "cuda" for p in with_grads)
    torch = pytest.importorskip("torch")
    tps = [torch.tensor(a, requires_grad=True) for a in init]
    topt = theirs(tps)
    for g in grads:
        for p, gi in zip(tps, g):
            p.grad = torch.tensor(gi)
        topt.step()
    _assert_matches_torch(with_grads, opt, tps, topt, np.float32)


@gpu
def test_torch_state_dict_loads_onto_cuda_and_continues_like_torch():
    mine, theirs = CASES["adam_amsgrad"]
    grads = _grads(np.float32, 12)
    tps, topt = _run_torch(theirs, np.float32, 6)
    ps = _cuda_params([p.detach().numpy() for p in tps])
    opt = mine(ps)
    opt.load_state_dict(topt.state_dict())
    torch = pytest.importorskip("torch")
    for g in grads[6:]:
        _set_grads(ps, g)
        for p, gi in zip(tps, g):
            p.grad = None if gi is None else torch.tensor(gi)
        opt.step()
        topt.step()
    _assert_matches_torch(ps, opt, tps, topt, np.float32)


@gpu
def test_recorded_step_replays_and_captures_into_a_cuda_graph(monkeypatch):
    """The fused step is a recorded run over fixed device buffers: replaying it, or a CUDA graph
    captured from it, follows the eager trajectory and the LR schedule."""
    import cupy as cp
    from audiograd.engine.program import Recorder
    mine, _ = CASES["adamw_amsgrad_maximize"]
    grads = [ag.tensor(a, device="cuda") for a in _init(np.float32, seed=3)]
    ps_e, ps_r = _cuda_params(_init(np.float32)), _cuda_params(_init(np.float32))
    opt_e, opt_r = mine(ps_e), mine(ps_r)
    sched_e = lr_scheduler.StepLR(opt_e, step_size=2, gamma=0.5)
    sched_r = lr_scheduler.StepLR(opt_r, step_size=2, gamma=0.5)
    for p_e, p_r, g in zip(ps_e, ps_r, grads):
        p_e.grad = p_r.grad = g

    def check():
        for a, b in zip(ps_e, ps_r):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        assert [opt_r.state[p]["step"].item() for p in ps_r] == [opt_e.state[p]["step"].item() for p in ps_e]

    opt_e.step()
    with Recorder() as rec:
        opt_r.step()
    assert len(rec.runs) == 1
    prog, bufs = rec.runs[0]
    sched_e.step()
    sched_r.step()
    check()
    launches = _count_launches(monkeypatch)
    for _ in range(3):
        opt_e.step()
        prog.run(bufs, bind=True)
        sched_e.step()
        sched_r.step()
    assert len(launches) == 6
    check()
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        prog.run(bufs, bind=True)
        graph = stream.end_capture()
    for _ in range(5):
        opt_e.step()
        graph.launch()  # on the current stream, after the learning rate's update
        sched_e.step()
        sched_r.step()
    cp.cuda.Device().synchronize()
    check()
    assert opt_r.state[ps_r[0]]["step"].item() == 9


@gpu
def test_jit_training_step_replays_as_a_graph_and_follows_lr_schedule():
    def make():
        ps = _cuda_params(_init(np.float32))
        opt = Adam(ps, lr=1e-2, amsgrad=True)
        sched = lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)

        def train_step(x):
            opt.zero_grad()
            loss = ((ps[0] - x) ** 2).sum()
            for p in ps[1:]:
                loss = loss + ((p - x) ** 2).sum()
            loss.backward()
            opt.step()
            return loss
        return ps, sched, train_step

    ps_e, sched_e, step_e = make()
    ps_j, sched_j, step_j = make()
    step_j = ag.jit(step_j)
    x = ag.tensor(np.array([0.3], np.float32), device="cuda")
    losses_e, losses_j = [], []
    for _ in range(8):
        losses_e.append(step_e(x).item())
        sched_e.step()
        losses_j.append(step_j(x).item())  # captured on the first call, replayed after
        sched_j.step()
    captured = next(iter(step_j.programs.values()))
    assert captured.graph is not None and captured.graph.graph is not None, "replays did not become a CUDA graph"
    np.testing.assert_allclose(losses_j, losses_e, rtol=1e-5)
    for a, b in zip(ps_j, ps_e):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
