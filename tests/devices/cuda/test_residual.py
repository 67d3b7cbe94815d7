"""Folding ``conv(x) + r`` into the convolution (``devices.cuda.residual``).

The rewrite is pure graph logic: it is checked here on lazy graphs built on the CPU (the GPU
runs it as one of its graph passes; the CPU has none); the GPU results are checked in
``tests/devices/cuda/test_cuda_conv_tc.py``.
"""

import numpy as np

import audiograd as ag
import audiograd.nn.functional as F
from audiograd.devices.cuda.residual import fold_residual_adds
from audiograd.graph.library_ops import has_addend
from audiograd.schedule.fuse import _collect


def _graph(make_sum):
    rng = np.random.default_rng(0)
    x = ag.tensor(rng.standard_normal((1, 16, 40)).astype(np.float32))
    w = ag.tensor(rng.standard_normal((16, 16, 3)).astype(np.float32))
    b = ag.tensor(rng.standard_normal(16).astype(np.float32))
    y = F.conv1d(x, w, b, padding=1)
    assert y.node.op == "conv_rows"
    return y, make_sum(y, x)


def _fold(outputs):
    g = _collect([o.node for o in outputs])
    return fold_residual_adds(list(g.nodes.values()), g.consumers, {o.node.base.id for o in outputs})


def test_sum_becomes_the_convolution_with_an_addend():
    for make in (lambda y, x: y + x, lambda y, x: x + y):
        y, out = _graph(make)
        conv_srcs, sum_srcs = y.node.srcs, out.node.srcs
        subs = _fold([out])
        assert list(subs) == [out.node.id]
        node = subs[out.node.id]
        assert node.op == "conv_rows" and has_addend(node) and not has_addend(y.node)
        assert node.srcs[:-1] == conv_srcs and node.srcs[-1].shape == node.shape == out.shape
        assert node.arg[:3] == y.node.arg
        assert out.node.op == "add" and out.node.srcs == sum_srcs  # the user's graph is unchanged


def test_left_alone_when_the_convolution_is_used_elsewhere_or_asked_for():
    y, out = _graph(lambda y, x: y + x)
    other = y * 2
    assert not _fold([out, other]) and out.node.op == "add"
    y, out = _graph(lambda y, x: y + x)
    assert not _fold([out, y]) and out.node.op == "add"


def test_left_alone_for_broadcast_or_masked_addends():
    y, out = _graph(lambda y, x: y + x[:, :1])          # broadcast along channels
    assert not _fold([out]) and out.node.op == "add"
    y, out = _graph(lambda y, x: y + F.pad(x[..., 1:], (0, 1)))  # a padded view
    assert not _fold([out]) and out.node.op == "add"


def test_the_fold_is_a_gpu_pass_only():
    from audiograd.devices.cpu.device import CpuDevice
    from audiograd.devices.cuda.device import CudaDevice
    assert fold_residual_adds in CudaDevice.graph_passes
    assert CpuDevice.graph_passes == ()
    y, out = _graph(lambda y, x: y + x)
    out.realize()  # on the CPU: computed as a sum of its own, the convolution unchanged
    assert not has_addend(y.node)
