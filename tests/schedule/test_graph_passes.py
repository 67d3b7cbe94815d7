"""Device graph passes: the scheduler runs the node a pass names in place of the node it
replaces, in that node's buffer, and the user's graph is left as it was."""
import numpy as np
import pytest

import audiograd as ag
import audiograd.nn.functional as F
from audiograd.devices import registry
from audiograd.devices.cuda.residual import fold_residual_adds
from audiograd.graph.library_ops import has_addend
from audiograd.schedule.fuse import LibraryStep, create_schedule


@pytest.fixture
def folding(monkeypatch):
    monkeypatch.setitem(registry.BACKENDS, "folding", "folding_device")
    return registry.get_device("folding")


def _residual_block(device, seed=0):
    rng = np.random.default_rng(seed)
    x = ag.tensor(rng.standard_normal((2, 16, 50)).astype(np.float32), device=device)
    w = ag.tensor(0.3 * rng.standard_normal((16, 16, 3)).astype(np.float32), device=device)
    return x, (F.conv1d(x.tanh(), w, padding=1) + x) * 0.5


def test_the_pass_computes_the_sum_in_its_buffer(folding):
    _, want = _residual_block("cpu")
    x, out = _residual_block(folding)
    total = out.node.srcs[0]  # the sum, before the scale
    steps = create_schedule([out.node], folding.graph_passes)
    folded = [s for s in steps if isinstance(s, LibraryStep) and has_addend(s.node)]
    assert len(folded) == 1 and folded[0].out is total.base and total.base.op == "add"
    assert not any(isinstance(s, LibraryStep) and not has_addend(s.node) for s in steps)  # no second conv
    np.testing.assert_allclose(out.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
    # the sum itself got the folded convolution's buffer, and keeps its op
    assert total.base.realized and total.base.op == "add"
    np.testing.assert_allclose(total.base.buffer, 2 * want.numpy(), rtol=1e-5, atol=1e-5)


def test_the_users_graph_keeps_its_meaning():
    x, out = _residual_block("cpu")
    before = (out.node.op, out.node.srcs)
    create_schedule([out.node], (fold_residual_adds,))  # scheduled for a device with the pass...
    assert (out.node.op, out.node.srcs) == before
    _, want = _residual_block("cpu")
    np.testing.assert_array_equal(out.numpy(), want.numpy())  # ...then realized on the CPU, which has none


def test_gradients_through_a_folded_sum(folding):
    def grads(device):
        x, _ = _residual_block(device)
        x.requires_grad_(True)
        w = ag.tensor(0.3 * np.random.default_rng(1).standard_normal((16, 16, 3)).astype(np.float32), device=device)
        out = F.conv1d(x.tanh(), w, padding=1) + x
        (out * out).sum().backward()
        return x.grad.numpy()
    np.testing.assert_allclose(grads(folding), grads("cpu"), rtol=1e-5, atol=1e-5)
