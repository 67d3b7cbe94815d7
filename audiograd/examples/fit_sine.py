"""A tiny MLP learns one period of a sine wave with a captured (jit) SGD training step."""
from __future__ import annotations

import math
import time

import numpy as np

import audiograd as ag


def init_mlp(sizes, seed: int = 0):
    """Weights and biases of an MLP, uniformly initialized like PyTorch's Linear."""
    ag.manual_seed(seed)
    params = []
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        bound = 1 / math.sqrt(fan_in)
        w = (ag.rand(fan_in, fan_out) * (2 * bound) - bound).realize().requires_grad_()
        b = (ag.rand(fan_out) * (2 * bound) - bound).realize().requires_grad_()
        params += [w, b]
    return params


def mlp(params, x):
    for i in range(0, len(params), 2):
        x = x @ params[i] + params[i + 1]
        if i + 2 < len(params):
            x = x.tanh()
    return x


def run(steps: int = 300, lr: float = 0.1, hidden: int = 64, log=print) -> float:
    """Train and return the final mean squared error."""
    params = init_mlp([1, hidden, hidden, 1])
    xs = np.linspace(-math.pi, math.pi, 256, dtype=np.float32).reshape(-1, 1)
    x, y = ag.tensor(xs), ag.tensor(np.sin(xs))

    @ag.jit
    def train_step(x, y):
        loss = ((mlp(params, x) - y) ** 2).mean()
        loss.backward()
        with ag.no_grad():
            for p in params:
                p.assign(p - lr * p.grad)
                p.grad = None
        return loss

    t0 = time.perf_counter()
    loss = float("nan")
    for step in range(steps):
        loss = train_step(x, y).item()
        if step % 50 == 0 or step == steps - 1:
            log(f"step {step:4d}  loss {loss:.6f}")
    log(f"trained {steps} steps in {time.perf_counter() - t0:.2f} s")
    return loss
