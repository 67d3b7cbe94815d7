"""Adam and AdamW with PyTorch's update rules (bias corrections, eps after the square root)."""
from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from ..tensor.tensor import Tensor
from .optimizer import Optimizer, scalar_tensor


class Adam(Optimizer):
    """``torch.optim.Adam``: ``m = lerp(m, g, 1-beta1)``, ``v = beta2*v + (1-beta2)*g*g``,
    ``p -= lr/(1-beta1^t) * m / (sqrt(v)/sqrt(1-beta2^t) + eps)`` (``v`` replaced by its running
    maximum with ``amsgrad``). ``weight_decay`` adds ``wd*p`` to the gradient."""

    _decoupled = False
    _state_keys = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0,
                 amsgrad: bool = False, maximize: bool = False):
        if lr < 0 or eps < 0 or weight_decay < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"invalid {type(self).__name__} hyperparameters: lr={lr}, betas={betas}, eps={eps}, "
                             f"weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    def _update(self, p: Tensor, grad: Tensor, group: Dict[str, Any], lr: Tensor) -> List[Tensor]:
        beta1, beta2 = group["betas"]
        wd, eps = group["weight_decay"], group["eps"]
        st = self.state.setdefault(p, {})
        if not st:
            st["step"] = scalar_tensor(0.0)
            st["exp_avg"] = Tensor(np.zeros(p.shape, p.dtype.np), dtype=p.dtype).realize()
            st["exp_avg_sq"] = Tensor(np.zeros(p.shape, p.dtype.np), dtype=p.dtype).realize()
        if group["amsgrad"] and st.get("max_exp_avg_sq") is None:
            st["max_exp_avg_sq"] = Tensor(np.zeros(p.shape, p.dtype.np), dtype=p.dtype).realize()
        step, m, v = st["step"], st["exp_avg"], st["exp_avg_sq"]
        g = -grad if group["maximize"] else grad
        old_p = p
        if wd and self._decoupled:
            old_p = p * (1 - lr * wd).to(p.dtype)
        elif wd:
            g = g + p * wd
        step.assign(step + 1)
        m.assign(m + (g - m) * (1 - beta1))
        v.assign(v * beta2 + g * (1 - beta2) * g)
        outs = [p, step, m, v]
        bc1 = 1 - beta1 ** step
        bc2_sqrt = (1 - beta2 ** step).sqrt()
        step_size = (lr / bc1).to(p.dtype)
        if group["amsgrad"]:
            vmax = st["max_exp_avg_sq"]
            vmax.assign(vmax.maximum(v))
            outs.append(vmax)
            v = vmax
        denom = v.sqrt() / bc2_sqrt.to(p.dtype) + eps
        p.assign(old_p - (m * step_size) / denom)
        return outs


class AdamW(Adam):
    """``torch.optim.AdamW``: Adam with decoupled weight decay, ``p *= 1 - lr*wd`` before the update."""

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
                 amsgrad: bool = False, maximize: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)
