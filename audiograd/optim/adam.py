"""Adam and AdamW with PyTorch's update rules (bias corrections, eps after the square root).

Parameters held in plain float buffers are updated by one fused multi-tensor kernel per group,
device and dtype, where the device has one (``Device.fused_adam``: C on the CPU, CUDA on the
GPU). Any other parameter (a strided view, an empty tensor, a device without the fused step)
is updated by the same rules written as tensor ops. A parameter's state lives on the parameter's device; so
does the learning rate its kernels read.
"""
from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from .. import dtypes as dt
from ..engine.program import Program
from ..tensor.tensor import Tensor, realize_all
from .optimizer import Optimizer


def _plain_buffer(t: Tensor):
    """``t``'s own C-contiguous buffer, if its values are exactly that buffer."""
    buf = t.node.buffer
    if buf is None:
        t.realize()
        buf = t.node.buffer  # still None for a view
    if buf is None:
        return None
    return buf if buf.flags.c_contiguous and tuple(buf.shape) == tuple(t.shape) else None


def _on_device(values, dtype: dt.DType, device: str) -> Tensor:
    """A realized tensor with its own buffer on ``device`` holding ``values`` (0-d stays 0-d)."""
    return Tensor(np.asarray(values, dtype.np), dtype=dtype, device=device).realize()


def _zeros(shape, dtype: dt.DType, device: str) -> Tensor:
    """A realized tensor of zeros with its own buffer on ``device``."""
    return _on_device(np.zeros(shape, dtype.np), dtype, device)


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
        self._replays: Dict[int, tuple] = {}          # per group: (what the last step read, its runs)

    def _state(self, p: Tensor, amsgrad: bool) -> Dict[str, Any]:
        st = self.state.setdefault(p, {})
        if not st:
            st["step"] = _zeros((), dt.float64, p.device)
            st["exp_avg"] = _zeros(p.shape, p.dtype, p.device)
            st["exp_avg_sq"] = _zeros(p.shape, p.dtype, p.device)
        elif st["step"].device != p.device:  # the parameter moved (Module.to): its state follows
            st.update({k: _on_device(v.numpy(), v.dtype, p.device) for k, v in st.items() if isinstance(v, Tensor)})
        if amsgrad and st.get("max_exp_avg_sq") is None:
            st["max_exp_avg_sq"] = _zeros(p.shape, p.dtype, p.device)
        return st

    def zero_grad(self, set_to_none: bool = True) -> None:
        self._replays.clear()  # let the old gradients go
        super().zero_grad(set_to_none)

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        self._replays.clear()  # the state buffers are new
        super().load_state_dict(state_dict)

    def _step_group(self, group: Dict[str, Any], lr: Tensor) -> List[Tensor]:
        params = [p for p in group["params"] if p.grad is not None]
        realize_all([p.grad for p in params])
        # the same parameters and gradient buffers as last step: replay its fused launches
        key = [group[k] for k in ("betas", "eps", "weight_decay", "amsgrad", "maximize")] + \
            [n for p in params for n in (p.node, p.grad.node)]
        last = self._replays.get(id(group))
        if last is not None and len(last[0]) == len(key) and all(a is b for a, b in zip(last[0], key)):
            for prog, bufs in last[1]:
                prog.record_and_run(bufs)
            return []
        self._replays.pop(id(group), None)
        lrs = {}
        fused: Dict[tuple, list] = {}
        outs: List[Tensor] = []
        for p in params:
            if p.device not in lrs:
                lrs[p.device] = self._lr_for(lr, p.device)
            pbuf = _plain_buffer(p) if p.dtype in (dt.float32, dt.float64) and p.numel() else None
            if pbuf is None or p.grad.device is not p.device or not p.device.has_fused_adam:
                outs.extend(self._update(p, p.grad.detach(), group, lrs[p.device]))
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
            fused.setdefault((p.device, p.dtype.ctype), []).append(bufs)
        runs = []
        for (device, ctype), per_param in fused.items():
            prog = self._fused_program(group, device, ctype, tuple(b[0].size for b in per_param))
            runs.append((prog, [b for bufs in per_param for b in bufs] + [lrs[device].node.base.buffer]))
            prog.record_and_run(runs[-1][1])
        if not outs:
            self._replays[id(group)] = (key, runs)
        return outs

    def _fused_program(self, group: Dict[str, Any], device, ctype: str, sizes: tuple) -> Program:
        """The compiled fused step for this group's hyperparameters, device and tensor sizes (cached)."""
        beta1, beta2 = group["betas"]
        key = (device, ctype, sizes, float(beta1), float(beta2), float(group["eps"]), float(group["weight_decay"]),
               bool(group["amsgrad"]), bool(group["maximize"]))
        if key not in self._programs:
            hyper = dict(beta1=beta1, beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
                         decoupled=self._decoupled, amsgrad=group["amsgrad"], maximize=group["maximize"])
            launch = device.fused_adam(ctype, sizes, **hyper)
            n_buffers = len(sizes) * (5 + bool(group["amsgrad"])) + 1
            self._programs[key] = Program.of_launch(device, launch, n_buffers)
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
