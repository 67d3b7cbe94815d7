"""Adam and AdamW with PyTorch's update rules (bias corrections, eps after the square root).

Parameters held in plain float CPU buffers (all CPU parameters, in practice) are updated by
one fused multi-tensor kernel per group (``codegen.optim_template``); any other parameter (a
strided view, an empty tensor, a GPU tensor) by the same rules written as tensor ops.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from .. import dtypes as dt
from ..codegen.optim_template import render_adam
from ..config import config
from ..schedule.program import Program
from ..tensor.tensor import Tensor, realize_all
from .optimizer import Optimizer, scalar_tensor


def _plain_buffer(t: Tensor) -> Optional[np.ndarray]:
    """``t``'s own C-contiguous buffer, if its values are exactly that buffer."""
    buf = t.node.buffer
    if buf is None:
        t.realize()
        buf = t.node.buffer  # still None for a view
    if not isinstance(buf, np.ndarray):  # the fused kernel is CPU code
        return None
    return buf if buf.flags.c_contiguous and buf.shape == tuple(t.shape) else None


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
        self._programs: Dict[tuple, Program] = {}   # fused step per group layout

    def _state(self, p: Tensor, amsgrad: bool) -> Dict[str, Any]:
        st = self.state.setdefault(p, {})
        if not st:
            st["step"] = scalar_tensor(0.0)
            st["exp_avg"] = Tensor(np.zeros(p.shape, p.dtype.np), dtype=p.dtype).realize()
            st["exp_avg_sq"] = Tensor(np.zeros(p.shape, p.dtype.np), dtype=p.dtype).realize()
        if amsgrad and st.get("max_exp_avg_sq") is None:
            st["max_exp_avg_sq"] = Tensor(np.zeros(p.shape, p.dtype.np), dtype=p.dtype).realize()
        return st

    def _step_group(self, group: Dict[str, Any], lr: Tensor) -> List[Tensor]:
        params = [p for p in group["params"] if p.grad is not None]
        realize_all([p.grad for p in params])
        fused: Dict[str, list] = {}
        outs: List[Tensor] = []
        for p in params:
            pbuf = _plain_buffer(p) if p.dtype in (dt.float32, dt.float64) and p.numel() else None
            if pbuf is None:
                outs.extend(self._update(p, p.grad.detach(), group, lr))
                continue
            g = p.grad.detach()
            if g.dtype != p.dtype or tuple(g.shape) != tuple(p.shape):
                g = g.to(p.dtype).expand(*p.shape)
            gbuf = _plain_buffer(g)
            if gbuf is None:
                gbuf = _plain_buffer(g.contiguous())
            st = self._state(p, group["amsgrad"])
            bufs = [pbuf, gbuf, st["exp_avg"].node.base.buffer, st["exp_avg_sq"].node.base.buffer]
            if group["amsgrad"]:
                bufs.append(st["max_exp_avg_sq"].node.base.buffer)
            bufs.append(st["step"].node.base.buffer)
            fused.setdefault(p.dtype.ctype, []).append(bufs)
        for ctype, per_param in fused.items():
            prog = self._fused_program(group, ctype, tuple(b[0].size for b in per_param))
            prog.record_and_run([b for bufs in per_param for b in bufs] + [lr.node.base.buffer])
        return outs

    def _fused_program(self, group: Dict[str, Any], ctype: str, sizes: tuple) -> Program:
        """The compiled fused step for this group's hyperparameters and tensor sizes (cached)."""
        beta1, beta2 = group["betas"]
        key = (ctype, sizes, float(beta1), float(beta2), float(group["eps"]), float(group["weight_decay"]),
               bool(group["amsgrad"]), bool(group["maximize"]))
        if key not in self._programs:
            name = f"adam_step_{ctype}_{len(sizes)}"
            source = render_adam(name, ctype, sizes, beta1=beta1, beta2=beta2, eps=group["eps"],
                                 weight_decay=group["weight_decay"], decoupled=self._decoupled,
                                 amsgrad=group["amsgrad"], maximize=group["maximize"], nthreads=config.num_threads)
            self._programs[key] = Program.from_kernel(name, source, len(sizes) * (5 + bool(group["amsgrad"])) + 1)
        return self._programs[key]

    def _update(self, p: Tensor, grad: Tensor, group: Dict[str, Any], lr: Tensor) -> List[Tensor]:
        beta1, beta2 = group["betas"]
        wd, eps = group["weight_decay"], group["eps"]
        st = self._state(p, group["amsgrad"])
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
