"""After the first step, optimizer steps compile and allocate nothing new, eager or captured."""
import numpy as np
import pytest

import audiograd as ag
from audiograd.nn.module import Parameter
from audiograd.optim import SGD, Adam, AdamW, lr_scheduler
from audiograd.devices.cpu.buffers import pool
from audiograd.devices.cpu.kernels import stats

pytestmark = pytest.mark.cpu_only  # the host buffer pool and C kernel counts

rng = np.random.default_rng(1)
# big enough that buffers go through the pool (>= 64 KiB)
X = rng.standard_normal((256, 64)).astype(np.float32)
Y = rng.standard_normal((256, 8)).astype(np.float32)
W0 = [rng.standard_normal((128, 64)).astype(np.float32) * 0.1, np.zeros(128, np.float32),
      rng.standard_normal((8, 128)).astype(np.float32) * 0.1, np.zeros(8, np.float32)]

OPTS = {
    "sgd": lambda ps: SGD(ps, lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4),
    "sgd_damp": lambda ps: SGD(ps, lr=0.01, momentum=0.9, dampening=0.1),
    "adam": lambda ps: Adam(ps, lr=1e-3, amsgrad=True, weight_decay=1e-4),
    "adamw": lambda ps: AdamW(ps, lr=1e-3),
}


def _loss(ps, x, y):
    h = (x @ ps[0].transpose(0, 1) + ps[1]).relu()
    return ((h @ ps[2].transpose(0, 1) + ps[3] - y) ** 2).mean()


def _ptrs(ps, opt):
    out = [p.node.base.buffer.ctypes.data for p in ps]
    for p in ps:
        for v in opt.state[p].values():
            if isinstance(v, ag.Tensor):
                out.append(v.node.base.buffer.ctypes.data)
    return out


@pytest.mark.parametrize("name", list(OPTS))
def test_eager_steps_compile_once(name):
    ps = [Parameter(ag.tensor(w)) for w in W0]
    opt = OPTS[name](ps)
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    x, y = ag.tensor(X), ag.tensor(Y)
    for p in ps:  # gradients as realized buffers: only the optimizer's kernels are measured
        p.grad = ag.tensor(rng.standard_normal(p.shape).astype(np.float32))
    opt.step()
    sched.step()
    counters = (pool.hits, pool.misses, stats.compiled, stats.loaded)
    bufs = [p.node.base.buffer for p in ps]
    ptrs = _ptrs(ps, opt)
    for _ in range(5):
        opt.step()
        sched.step()
    assert (pool.hits, pool.misses, stats.compiled, stats.loaded) == counters
    assert all(p.node.base.buffer is b for p, b in zip(ps, bufs))
    assert _ptrs(ps, opt) == ptrs
    # a whole eager training step also compiles nothing new after the first one
    for i in range(4):
        opt.zero_grad()
        _loss(ps, x, y).backward()
        opt.step()
        sched.step()
        if i == 0:
            compiled, loaded = stats.compiled, stats.loaded
    assert (stats.compiled, stats.loaded) == (compiled, loaded)
    assert _ptrs(ps, opt) == ptrs


@pytest.mark.parametrize("name", list(OPTS))
def test_jit_replays_allocate_nothing_and_match_eager(name):
    def make():
        ps = [Parameter(ag.tensor(w)) for w in W0]
        opt = OPTS[name](ps)
        sched = lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)

        def train_step(x, y):
            opt.zero_grad()
            loss = _loss(ps, x, y)
            loss.backward()
            opt.step()
            return loss
        return ps, opt, sched, train_step

    ps_e, opt_e, sched_e, step_e = make()
    ps_j, opt_j, sched_j, step_j = make()
    step_j = ag.jit(step_j)
    x, y = ag.tensor(X), ag.tensor(Y)
    losses_e, losses_j = [], []
    for _ in range(8):
        losses_e.append(step_e(x, y).item())
        sched_e.step()
    for i in range(8):  # captured on call 0, replayed from call 1 on
        losses_j.append(step_j(x, y).item())
        sched_j.step()
        if i == 1:
            counters = (pool.hits, pool.misses, stats.compiled, stats.loaded)
            bufs = [p.node.base.buffer for p in ps_j]
            ptrs = _ptrs(ps_j, opt_j)
    assert (pool.hits, pool.misses, stats.compiled, stats.loaded) == counters
    assert all(p.node.base.buffer is b for p, b in zip(ps_j, bufs))
    assert _ptrs(ps_j, opt_j) == ptrs
    # replays follow the eager trajectory, lr schedule included
    np.testing.assert_allclose(losses_j, losses_e, rtol=1e-5)
    for a, b in zip(ps_j, ps_e):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_step_is_one_fused_kernel(name, monkeypatch):
    """Every parameter of a group is updated by a single kernel call per step."""
    from audiograd.engine.program import Program
    ps = [Parameter(ag.tensor(w)) for w in W0]
    opt = OPTS[name](ps)
    for p in ps:
        p.grad = ag.tensor(rng.standard_normal(p.shape).astype(np.float32))
    opt.step()
    runs = []
    real_run = Program.run
    monkeypatch.setattr(Program, "run", lambda self, bufs, **kw: (runs.append(len(self.calls)),
                                                                   real_run(self, bufs, **kw)))
    opt.step()
    assert runs == [1]


def test_loading_a_state_dict_after_steps_takes_effect_on_the_next_step():
    rng = np.random.default_rng(3)
    p = ag.tensor(rng.standard_normal(1000).astype(np.float32), requires_grad=True)
    p.grad = ag.tensor(rng.standard_normal(1000).astype(np.float32))
    opt = Adam([p], lr=1e-2)
    opt.step()
    saved, at = opt.state_dict(), p.numpy()
    opt.step()
    opt.step()
    expected = p.numpy()
    p.node.base.buffer[...] = at  # in place: the same buffer as before
    opt.load_state_dict(saved)  # same parameter and gradient: the next steps must use the loaded moments
    opt.step()
    opt.step()
    np.testing.assert_array_equal(p.numpy(), expected)
