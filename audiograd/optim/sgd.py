"""Stochastic gradient descent with PyTorch's momentum, dampening, Nesterov and weight decay."""
from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from ..tensor.tensor import Tensor
from .optimizer import Optimizer, scalar_tensor


class SGD(Optimizer):
    """``torch.optim.SGD``: with momentum ``b = momentum*b + (1-dampening)*g`` (``b = g`` on the
    first step), ``g = g + momentum*b`` for Nesterov else ``g = b``, then ``p -= lr*g``."""

    _state_keys = ("momentum_buffer",)

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, maximize: bool = False):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"invalid SGD hyperparameters: lr={lr}, momentum={momentum}, weight_decay={weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))
        self._calls: Dict[Tensor, Tensor] = {}  # per parameter: updates so far (momentum's first step)

    def _update(self, p: Tensor, grad: Tensor, group: Dict[str, Any], lr: Tensor) -> List[Tensor]:
        g = -grad if group["maximize"] else grad
        wd, momentum, damp = group["weight_decay"], group["momentum"], group["dampening"]
        if wd:
            g = g + p * wd
        outs = [p]
        st = self.state.setdefault(p, {})
        if momentum:
            buf = st.get("momentum_buffer")
            if buf is None:
                buf = st["momentum_buffer"] = Tensor(np.zeros(p.shape, p.dtype.np), dtype=p.dtype,
                                                     device=p.device).realize()
                self._calls[p] = scalar_tensor(0.0, p.device)
            n = self._calls.setdefault(p, scalar_tensor(1.0, p.device))
            n.assign(n + 1)
            started = (n - 1).minimum(1.0)     # 0 on the first update, then 1: same kernel every step
            a = (started * momentum).to(p.dtype)
            b = (1 - started * damp).to(p.dtype)
            buf.assign(buf * a + g * b)
            g = g + buf * momentum if group["nesterov"] else buf
            outs += [buf, n]
        else:
            st.setdefault("momentum_buffer", None)
        p.assign(p - g * self._lr_for(lr, p.device).to(p.dtype))
        return outs

    def _load_param_state(self, p, s):
        out = super()._load_param_state(p, s)
        if out.get("momentum_buffer") is not None:
            self._calls[p] = scalar_tensor(1.0, p.device)
        else:
            self._calls.pop(p, None)
        return out
