"""Optimizers, clipping and schedulers against torch.optim, and allocation/compile checks."""
import math

import numpy as np
import pytest

import audiograd as ag
from audiograd import nn
from audiograd.nn.module import Parameter
from audiograd.optim import SGD, Adam, AdamW, lr_scheduler

torch = pytest.importorskip("torch")

rng = np.random.default_rng(0)
X = rng.standard_normal((16, 5))
Y = np.sin(X @ rng.standard_normal((5, 2)))
W0 = [rng.standard_normal((8, 5)) * 0.5, rng.standard_normal(8) * 0.1,
      rng.standard_normal((2, 8)) * 0.5, rng.standard_normal(2) * 0.1]


def _loss_ag(ps, x, y):
    h = (x @ ps[0].transpose(0, 1) + ps[1]).tanh()
    out = h @ ps[2].transpose(0, 1) + ps[3]
    return ((out - y) ** 2).mean()


def _loss_torch(ps, x, y):
    h = torch.tanh(x @ ps[0].T + ps[1])
    return ((h @ ps[2].T + ps[3] - y) ** 2).mean()


def run_ag(make_opt, dtype, steps, groups=False):
    ps = [Parameter(ag.tensor(w.astype(dtype))) for w in W0]
    opt = make_opt([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.02}] if groups else ps)
    x, y = ag.tensor(X.astype(dtype)), ag.tensor(Y.astype(dtype))
    for _ in range(steps):
        opt.zero_grad()
        _loss_ag(ps, x, y).backward()
        opt.step()
    return [p.numpy() for p in ps], opt, ps


def run_torch(make_opt, dtype, steps, groups=False):
    ps = [torch.tensor(w.astype(dtype), requires_grad=True) for w in W0]
    opt = make_opt([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.02}] if groups else ps)
    x, y = torch.tensor(X.astype(dtype)), torch.tensor(Y.astype(dtype))
    for _ in range(steps):
        opt.zero_grad()
        _loss_torch(ps, x, y).backward()
        opt.step()
    return [p.detach().numpy() for p in ps]


CASES = {
    "sgd": (lambda p: SGD(p, lr=0.05), lambda p: torch.optim.SGD(p, lr=0.05, foreach=False)),
    "sgd_momentum": (lambda p: SGD(p, lr=0.05, momentum=0.9),
                     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, foreach=False)),
    "sgd_nesterov": (lambda p: SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2),
                     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2,
                                               foreach=False)),
    "sgd_dampening_wd": (lambda p: SGD(p, lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.05),
                         lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.05,
                                                   foreach=False)),
    "adam": (lambda p: Adam(p, lr=1e-2), lambda p: torch.optim.Adam(p, lr=1e-2, foreach=False)),
    "adam_amsgrad": (lambda p: Adam(p, lr=1e-2, amsgrad=True),
                     lambda p: torch.optim.Adam(p, lr=1e-2, amsgrad=True, foreach=False)),
    "adam_wd": (lambda p: Adam(p, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
                lambda p: torch.optim.Adam(p, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1,
                                           foreach=False)),
    "adam_maximize": (lambda p: Adam(p, lr=1e-2, maximize=True, weight_decay=0.05),
                      lambda p: torch.optim.Adam(p, lr=1e-2, maximize=True, weight_decay=0.05, foreach=False)),
    "adamw": (lambda p: AdamW(p, lr=1e-2), lambda p: torch.optim.AdamW(p, lr=1e-2, foreach=False)),
    "adamw_amsgrad": (lambda p: AdamW(p, lr=1e-2, weight_decay=0.1, amsgrad=True),
                      lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1, amsgrad=True, foreach=False)),
}


@pytest.mark.parametrize("dtype,tol", [(np.float64, dict(rtol=1e-10, atol=1e-12)),
                                       (np.float32, dict(rtol=1e-5, atol=1e-5))])
@pytest.mark.parametrize("name", list(CASES))
def test_100_step_trajectory_matches_torch(name, dtype, tol):
    mine, theirs = CASES[name]
    a, _, _ = run_ag(mine, dtype, 100)
    b = run_torch(theirs, dtype, 100)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, **tol)


@pytest.mark.parametrize("name", ["sgd_momentum", "adam"])
def test_param_groups_with_own_lr(name):
    mine, theirs = CASES[name]
    a, _, _ = run_ag(mine, np.float64, 30, groups=True)
    b = run_torch(theirs, np.float64, 30, groups=True)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["sgd_momentum", "adam_amsgrad", "adamw"])
def test_state_dict_round_trip_continues_identically(name):
    mine, _ = CASES[name]
    full, _, _ = run_ag(mine, np.float64, 20)
    _, opt, ps = run_ag(mine, np.float64, 10)
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"} and sorted(sd["state"]) == [0, 1, 2, 3]
    assert sd["param_groups"][0]["params"] == [0, 1, 2, 3]
    ps2 = [Parameter(ag.tensor(p.numpy())) for p in ps]
    opt2 = mine(ps2)
    opt2.load_state_dict(sd)
    x, y = ag.tensor(X), ag.tensor(Y)
    for _ in range(10):
        opt2.zero_grad()
        _loss_ag(ps2, x, y).backward()
        opt2.step()
    for u, p in zip(full, ps2):
        np.testing.assert_array_equal(u, p.numpy())


def test_state_dict_matches_torch_layout():
    _, opt, _ = run_ag(CASES["adam"][0], np.float64, 3)
    tps = [torch.tensor(w, requires_grad=True) for w in W0]
    topt = torch.optim.Adam(tps, lr=1e-2)
    for _ in range(3):
        topt.zero_grad()
        _loss_torch(tps, torch.tensor(X), torch.tensor(Y)).backward()
        topt.step()
    ours, theirs = opt.state_dict(), topt.state_dict()
    assert set(ours["state"][0]) == set(theirs["state"][0])
    assert set(ours["param_groups"][0]) <= set(theirs["param_groups"][0])
    # torch's state dict loads into ours
    opt.load_state_dict(theirs)
    np.testing.assert_allclose(opt.state_dict()["state"][1]["exp_avg"], theirs["state"][1]["exp_avg"].numpy())


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.1, 100.0])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    grads = [rng.standard_normal(s) for s in [(3, 4), (5,), (2, 2, 2)]]
    ps = [Parameter(ag.tensor(np.zeros_like(g))) for g in grads]
    for p, g in zip(ps, grads):
        p.grad = ag.tensor(g)
    tps = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, g in zip(tps, grads):
        p.grad = torch.tensor(g)
    total = nn.utils.clip_grad_norm_(ps, max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tps, max_norm, norm_type)
    assert isinstance(total, ag.Tensor)
    np.testing.assert_allclose(total.item(), ttotal.item(), rtol=1e-12)
    for p, t in zip(ps, tps):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-12, atol=1e-15)


def _lrs(sched_cls, opt, n, **kw):
    s = sched_cls(opt, **kw)
    out = []
    for _ in range(n):
        out.append(s.get_last_lr()[0])
        opt.step()
        s.step()
    return out


@pytest.mark.parametrize("cls,kw", [("StepLR", dict(step_size=7, gamma=0.5)),
                                    ("CosineAnnealingLR", dict(T_max=25, eta_min=1e-4)),
                                    ("CosineAnnealingLR", dict(T_max=10))])
def test_schedulers_match_torch(cls, kw):
    p = Parameter(ag.tensor(np.zeros(2)))
    tp = torch.zeros(2, requires_grad=True)
    ours = _lrs(getattr(lr_scheduler, cls), SGD([p], lr=0.1), 60, **kw)
    theirs = _lrs(getattr(torch.optim.lr_scheduler, cls), torch.optim.SGD([tp], lr=0.1), 60, **kw)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-14)


def test_scheduler_lr_reaches_the_kernels():
    mine = lambda ps: SGD(ps, lr=0.05, momentum=0.9)  # noqa: E731
    ps = [Parameter(ag.tensor(w)) for w in W0]
    opt = mine(ps)
    sched = lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
    tps = [torch.tensor(w, requires_grad=True) for w in W0]
    topt = torch.optim.SGD(tps, lr=0.05, momentum=0.9, foreach=False)
    tsched = torch.optim.lr_scheduler.StepLR(topt, step_size=5, gamma=0.5)
    x, y = ag.tensor(X), ag.tensor(Y)
    for _ in range(20):
        opt.zero_grad()
        _loss_ag(ps, x, y).backward()
        opt.step()
        sched.step()
        topt.zero_grad()
        _loss_torch(tps, torch.tensor(X), torch.tensor(Y)).backward()
        topt.step()
        tsched.step()
    for p, t in zip(ps, tps):
        np.testing.assert_allclose(p.numpy(), t.detach().numpy(), rtol=1e-10)


def test_adam_on_strided_view_parameter_matches_torch():
    """A parameter that is a transposed view of its buffer takes the tensor-op path, with the
    same result as the fused kernel's parameters."""
    w = rng.standard_normal((5, 8))
    g = rng.standard_normal((8, 5))
    p_view = ag.tensor(w).transpose(0, 1)          # (8, 5), strided
    p_view.requires_grad_(True)
    p_plain = ag.tensor(w.T.copy(), requires_grad=True)
    tp = torch.tensor(w.T.copy(), requires_grad=True)
    opt = Adam([p_view, p_plain], lr=1e-2, weight_decay=0.1)
    topt = torch.optim.Adam([tp], lr=1e-2, weight_decay=0.1, foreach=False)
    for i in range(5):
        gi = ag.tensor(g * (i + 1))
        p_view.grad, p_plain.grad = gi, gi
        tp.grad = torch.tensor(g * (i + 1))
        opt.step()
        topt.step()
    np.testing.assert_allclose(p_view.numpy(), tp.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(p_plain.numpy(), tp.detach().numpy(), rtol=1e-10, atol=1e-12)
