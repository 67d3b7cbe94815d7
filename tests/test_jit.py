"""audiograd.jit: captured programs replay the same results, reuse memory, and handle new shapes."""
import numpy as np
import pytest

import audiograd as ag
from audiograd.devices.cpu.kernels import stats


def block(x, w):
    h = (x @ w).tanh()
    h = h - h.mean(-1, keepdim=True)
    return (h * h).sum(-1).sqrt(), h.amax()


def test_replay_matches_eager_and_compiles_nothing_new():
    rng = np.random.default_rng(0)
    w = ag.tensor(rng.standard_normal((16, 32)).astype(np.float32))
    f = ag.jit(lambda x: block(x, w))
    for i in range(4):
        x = rng.standard_normal((8, 16)).astype(np.float32)
        if i == 2:
            before = stats.compiled
        got = f(ag.tensor(x))
        want = block(ag.tensor(x), w)
        for g, e in zip(got, want):
            np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-6, atol=1e-6)
    assert stats.compiled == before
    assert len(f.programs) == 1


def test_arena_reuses_memory_by_lifetime():
    rng = np.random.default_rng(1)

    @ag.jit
    def chain(x):
        for i in range(6):
            x = (x * 0.5 + i).sin().mean(-1, keepdim=True) + x  # each step needs its own buffers
        return x.mean()

    x = rng.standard_normal((64, 4096)).astype(np.float32)
    out = chain(ag.tensor(x)).item()
    prog = next(iter(chain.programs.values()))
    assert prog.arena_bytes > 0
    assert prog.arena_bytes < prog.unplanned_bytes / 2, (prog.arena_bytes, prog.unplanned_bytes)
    again = chain(ag.tensor(x)).item()
    assert again == out
    ref = x.astype(np.float64)
    for i in range(6):
        ref = np.sin(ref * 0.5 + i).mean(-1, keepdims=True) + ref
    np.testing.assert_allclose(out, ref.mean(), rtol=1e-4)


def test_new_shape_recaptures_or_raises():
    f = ag.jit(lambda x: (x * 2).sum(0))
    a = f(ag.ones(3, 4)).numpy()
    b = f(ag.ones(5, 4)).numpy()
    np.testing.assert_array_equal(a, np.full(4, 6.0))
    np.testing.assert_array_equal(b, np.full(4, 10.0))
    assert len(f.programs) == 2
    strict = ag.jit(recapture=False)(lambda x: x + 1)
    strict(ag.ones(2))
    with pytest.raises(ValueError, match="captured for"):
        strict(ag.ones(3))


def test_captured_training_step_matches_eager():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((32, 4)).astype(np.float32)
    Y = X @ np.array([[1.0], [-2.0], [0.5], [3.0]], np.float32)
    w0 = rng.standard_normal((4, 1)).astype(np.float32)

    def make():
        w = ag.tensor(w0, requires_grad=True)

        def step(x, y):
            loss = ((x @ w - y) ** 2).mean()
            loss.backward()
            with ag.no_grad():
                w.assign(w - 0.1 * w.grad)
            w.grad = None
            return loss
        return w, step

    w_eager, step_eager = make()
    w_jit, step_jit = make()
    step_jit = ag.jit(step_jit)
    for _ in range(20):
        le = step_eager(ag.tensor(X), ag.tensor(Y)).item()
        lj = step_jit(ag.tensor(X), ag.tensor(Y)).item()
        assert lj == pytest.approx(le, rel=1e-6)
    np.testing.assert_allclose(w_jit.numpy(), w_eager.numpy(), rtol=1e-6)
    assert lj < 0.05


def test_rejects_non_tensor_results():
    with pytest.raises(TypeError, match="must return a Tensor"):
        ag.jit(lambda x: 3)(ag.ones(2))
