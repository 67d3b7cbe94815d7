"""The Optimizer base class: parameter groups, state, ``zero_grad`` and state dicts as in PyTorch.

Updates are built lazily and realized together (``realize_all``) so they fuse into few
kernels, and they are written in place (``assign``) so parameters and state keep their
buffers. Values that change from step to step (learning rate, step count, bias corrections)
live in small float64 tensors rather than in kernel constants: the kernel source stays the
same on every step, so it is compiled once, and a ``jit`` capture of a training step reads
the current values on every replay.
"""
from __future__ import annotations

import copy
from typing import Any, Dict, Iterable, List

import numpy as np

from .. import dtypes as dt
from ..devices.registry import host
from ..tensor.tensor import Tensor, realize_all


def scalar_tensor(value: float, device) -> Tensor:
    """A realized 0-d float64 tensor holding ``value`` on ``device`` (a host one's buffer can be
    overwritten in place)."""
    return Tensor(np.array(value, np.float64), dtype=dt.float64, device=device).realize()


def write_scalar(t: Tensor, value: float) -> None:
    """Overwrite a realized scalar tensor's buffer without building a kernel."""
    t.realize()
    t.node.base.buffer[...] = value


def as_numpy(v) -> np.ndarray:
    """A numpy copy of a Tensor, numpy array, torch tensor or number."""
    if isinstance(v, Tensor):
        return v.numpy()
    if type(v).__module__.split(".")[0] == "torch":
        v = v.detach().cpu().numpy()
    return np.array(v)


class Optimizer:
    """Base class: holds ``param_groups`` (dicts with ``params`` and hyperparameters) and ``state``."""

    def __init__(self, params: Iterable, defaults: Dict[str, Any]):
        self.defaults = dict(defaults)
        self.state: Dict[Tensor, Dict[str, Any]] = {}
        self.param_groups: List[Dict[str, Any]] = []
        self._lr: List[Tensor] = []          # per group: lr as a float64 scalar tensor
        self._lr_on: Dict[tuple, Tensor] = {}     # (group index, device): lr as a scalar there
        self._lr_on_value: Dict[tuple, float] = {}  # the value last written there
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        for g in params:
            self.add_param_group(g)

    def add_param_group(self, param_group: Dict[str, Any]) -> None:
        """Add a group of parameters with its own hyperparameters (missing ones take the defaults)."""
        group = dict(param_group)
        ps = group["params"]
        group["params"] = [ps] if isinstance(ps, Tensor) else list(ps)
        for p in group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, got {type(p).__name__}")
            if not p.dtype.is_float:
                raise TypeError(f"optimizer can only optimize floating point tensors, got {p.dtype.name}")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in group["params"]):
            raise ValueError("some parameters appear in more than one parameter group")
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self.param_groups.append(group)
        self._lr.append(scalar_tensor(group["lr"], host()))

    def _sync_hyper(self) -> None:
        """Copy each group's ``lr`` into the scalar tensors that the kernels read."""
        for g, t in zip(self.param_groups, self._lr):
            write_scalar(t, float(g["lr"]))
        for (gi, device), t in self._lr_on.items():
            value = float(self.param_groups[gi]["lr"])
            if self._lr_on_value[gi, device] != value:  # ordered with queued work: queued steps keep their rate
                device.fill(t.node.base.buffer, value)
                self._lr_on_value[gi, device] = value

    def _lr_for(self, lr: Tensor, device) -> Tensor:
        """The group learning-rate scalar ``lr`` as read by kernels on ``device`` (a copy on
        another device is made on first use and refreshed by ``_sync_hyper``)."""
        if device is lr.device:
            return lr
        gi = next(i for i, t in enumerate(self._lr) if t is lr)
        t = self._lr_on.get((gi, device))
        if t is None:
            value = float(self.param_groups[gi]["lr"])
            t = self._lr_on[gi, device] = scalar_tensor(value, device)
            self._lr_on_value[gi, device] = value
        return t

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop the gradients (``set_to_none``) or zero them in place."""
        zeroed = []
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad = p.grad.detach()
                    p.grad.assign(0)
                    zeroed.append(p.grad)
        realize_all(zeroed)

    def step(self, closure=None):
        """Update every parameter that has a gradient; returns ``closure()`` if one is given."""
        loss = None
        if closure is not None:
            from ..tensor.autograd import enable_grad
            with enable_grad():
                loss = closure()
        self._sync_hyper()
        outs: List[Tensor] = []
        from ..tensor.autograd import no_grad
        with no_grad():
            for gi, group in enumerate(self.param_groups):
                outs.extend(self._step_group(group, self._lr[gi]))
        realize_all(outs)
        return loss

    def _step_group(self, group: Dict[str, Any], lr: Tensor) -> List[Tensor]:
        """Update one group's parameters that have gradients; return lazy results to realize."""
        outs: List[Tensor] = []
        for p in group["params"]:
            if p.grad is not None:
                outs.extend(self._update(p, p.grad.detach(), group, lr))
        return outs

    def _update(self, p: Tensor, grad: Tensor, group: Dict[str, Any], lr: Tensor) -> List[Tensor]:
        """Build the lazy in-place updates of one parameter; return the tensors to realize."""
        raise NotImplementedError

    # ---- state dicts -----------------------------------------------------------------------
    _state_keys: tuple = ()

    def _index(self):
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self) -> Dict[str, Any]:
        """``{'state': {index: {name: numpy array}}, 'param_groups': [...]}`` as in PyTorch
        (parameters are numbered in group order; values are copies)."""
        state = {}
        for i, p in enumerate(self._index()):
            if p in self.state:
                state[i] = {k: (None if v is None else v.numpy() if isinstance(v, Tensor) else copy.deepcopy(v))
                            for k, v in self.state[p].items()}
        groups, n = [], 0
        for g in self.param_groups:
            d = {k: v for k, v in g.items() if k != "params"}
            d["params"] = list(range(n, n + len(g["params"])))
            n += len(g["params"])
            groups.append(d)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restore hyperparameters and state saved by ``state_dict`` (ours or PyTorch's)."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(a["params"]) != len(b["params"]) for a, b in zip(groups, self.param_groups)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match the size "
                             "of optimizer's group")
        index = {}
        for saved, own in zip(groups, self.param_groups):
            for k, v in saved.items():
                if k != "params":
                    own[k] = copy.deepcopy(v)
            index.update(zip(saved["params"], own["params"]))
        self.state = {}
        for i, s in state_dict["state"].items():
            p = index[int(i)]
            self.state[p] = self._load_param_state(p, s)
        self._sync_hyper()

    def _load_param_state(self, p: Tensor, s: Dict[str, Any]) -> Dict[str, Any]:
        out = {}
        for k, v in s.items():
            if v is None:
                out[k] = None
            elif k == "step":
                out[k] = scalar_tensor(float(as_numpy(v)), p.device)
            else:
                arr = as_numpy(v)
                if k in self._state_keys:
                    if tuple(arr.shape) != tuple(p.shape):
                        raise ValueError(f"state {k!r} has shape {arr.shape}, parameter has {p.shape}")
                    out[k] = Tensor(arr.astype(p.dtype.np), dtype=p.dtype, device=p.device).realize()
                else:
                    out[k] = copy.deepcopy(v)
        return out

    def __repr__(self) -> str:
        lines = [type(self).__name__ + " ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params"]
        return "\n".join(lines + [")"])
