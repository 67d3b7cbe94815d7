"""Module, Parameter and containers: PyTorch's model-building API over audiograd tensors."""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Iterator, Optional, Tuple

import numpy as np

from .. import dtypes as dt
from ..devices.registry import gpu, host
from ..tensor.device import check_device, names_a_device
from ..tensor.tensor import Tensor, realize_all


class Parameter(Tensor):
    """A tensor that a Module registers as trainable (requires_grad by default)."""

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            data = np.zeros(0, np.float32)
        node = data.detach().node if isinstance(data, Tensor) else Tensor(data).node
        super().__init__(node)
        if requires_grad:
            self.requires_grad_(True)
        self.realize()

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of layers: registers parameters, buffers and submodules by attribute."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ---- registration ----------------------------------------------------------------------
    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        is_buffer = name in self._buffers
        for d in (self._parameters, self._buffers, self._modules):
            d.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif is_buffer:
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name: str):
        d = self.__dict__
        for key in ("_parameters", "_buffers", "_modules"):
            if key in d and name in d[key]:
                return d[key][name]
        derived = d.get("_derived", {})
        if name in derived:  # e.g. a weight recomputed from weight norm's g and v
            return derived[name]()
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for d in (self._parameters, self._buffers, self._modules):
            if name in d:
                del d[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Optional[Parameter]) -> None:
        if param is None:
            self._parameters[name] = None
        else:
            setattr(self, name, param)

    def register_buffer(self, name: str, tensor: Optional[Tensor], persistent: bool = True) -> None:
        """A tensor saved in the state dict (if persistent) but not trained."""
        if persistent:
            self.__dict__.setdefault("_persistent", set()).add(name)
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor

    def add_module(self, name: str, module: Optional["Module"]) -> None:
        self._modules[name] = module

    # ---- traversal -------------------------------------------------------------------------
    def named_modules(self, prefix: str = "", memo=None) -> Iterator[Tuple[str, "Module"]]:
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(f"{prefix}.{name}" if prefix else name, memo)

    def modules(self) -> Iterator["Module"]:
        return (m for _, m in self.named_modules())

    def named_children(self) -> Iterator[Tuple[str, "Module"]]:
        return ((n, m) for n, m in self._modules.items() if m is not None)

    def children(self) -> Iterator["Module"]:
        return (m for _, m in self.named_children())

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[Tuple[str, Parameter]]:
        seen = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mp, m in mods:
            for n, p in m._parameters.items():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mp}.{n}" if mp else n), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix: str = "") -> Iterator[Tuple[str, Tensor]]:
        for mp, m in self.named_modules(prefix):
            for n, b in m._buffers.items():
                if b is not None:
                    yield (f"{mp}.{n}" if mp else n), b

    def buffers(self) -> Iterator[Tensor]:
        return (b for _, b in self.named_buffers())

    # ---- state -----------------------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, Tensor]":
        """Parameters and persistent buffers by dotted name (PyTorch's naming)."""
        out = OrderedDict()
        for mp, m in self.named_modules():
            persistent = m.__dict__.get("_persistent", set())
            for n, p in m._parameters.items():
                if p is not None:
                    out[f"{mp}.{n}" if mp else n] = p.detach()
            for n, b in m._buffers.items():
                if b is not None and n in persistent:
                    out[f"{mp}.{n}" if mp else n] = b.detach()
        return out

    def _state_aliases(self) -> Dict[str, str]:
        """Alternative key -> our key, for names other libraries give the same tensor."""
        aliases = {}
        for mp, m in self.named_modules():
            for alt, ours in getattr(m, "_key_aliases", {}).items():
                p = f"{mp}." if mp else ""
                aliases[p + alt] = p + ours
        return aliases

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy values in place (tensors or numpy arrays); with ``strict`` every key must match.

        Raises KeyError listing missing and unexpected keys, or ValueError listing keys whose
        shapes differ; nothing is modified unless every key fits.
        """
        own = self.state_dict()
        aliases = self._state_aliases()
        incoming = {aliases.get(k, k): v for k, v in state_dict.items()}
        missing = [k for k in own if k not in incoming]
        unexpected = [k for k in state_dict if aliases.get(k, k) not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict for {type(self).__name__}: missing keys {missing}, "
                           f"unexpected keys {unexpected}")
        shapes = []
        values = {}
        for k, target in own.items():
            if k not in incoming:
                continue
            v = incoming[k]
            arr = v.numpy() if isinstance(v, Tensor) else np.asarray(v)
            if tuple(arr.shape) != tuple(target.shape):
                shapes.append(f"{k}: checkpoint {tuple(arr.shape)} vs model {tuple(target.shape)}")
            values[k] = arr
        if shapes:
            raise ValueError(f"load_state_dict for {type(self).__name__}: shape mismatch for " + "; ".join(shapes))
        live = dict(self.named_parameters())
        live.update(self.named_buffers())
        for k, arr in values.items():
            t = live[k]
            t.assign(Tensor(arr.astype(t.dtype.np, copy=False), dtype=t.dtype, device=t.device))
        realize_all(live[k] for k in values)
        return missing, unexpected

    # ---- modes -----------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            p.grad = None if set_to_none else (p.grad.zeros_like() if p.grad is not None else None)

    def requires_grad_(self, flag: bool = True) -> "Module":
        for p in self.parameters():
            p.requires_grad_(flag)
        return self

    def to(self, target=None, dtype=None, device=None) -> "Module":
        """Move to a device (``to("cuda")``), cast floating parameters and buffers
        (``to(audiograd.float64)``), or both. Parameters keep their identity, as in PyTorch:
        an optimizer built before the move still updates them; their gradients move too."""
        if names_a_device(target):
            device, target = target, None
        d = target if target is not None else dtype
        d = dt.to_dtype(d) if d is not None else None
        if device is not None:
            device = check_device(device)  # raises for unavailable devices
        for m in self.modules():
            for store in (m._parameters, m._buffers):
                for n, t in store.items():
                    if t is None:
                        continue
                    cast = d if d is not None and t.dtype.is_float and t.dtype is not d else None
                    move = device if device is not None and t.device is not device else None
                    if cast is None and move is None:
                        continue
                    new = t.detach().to(cast or t.dtype, device=move).realize()
                    if isinstance(t, Parameter):
                        t.node = new.node
                        if t.grad is not None:
                            t.grad = t.grad.to(cast or t.grad.dtype, device=move).realize()
                    else:
                        store[n] = new
        return self

    def cuda(self, device: Optional[int] = None) -> "Module":
        """Move every parameter and buffer to the GPU of that number."""
        return self.to(gpu(device))

    def cpu(self) -> "Module":
        """Move every parameter and buffer to the CPU."""
        return self.to(host())

    def float(self) -> "Module":
        return self.to(dt.float32)

    def double(self) -> "Module":
        return self.to(dt.float64)

    def apply(self, fn) -> "Module":
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ---- calling ---------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"({n}): " + repr(m).replace("\n", "\n  ") for n, m in self.named_children()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        return head + ")" if not lines else head + "\n  " + "\n  ".join(lines) + "\n)"


class _Container(Module):
    """Submodules kept in order under the names "0", "1", ..."""

    def append(self, m: Module) -> "_Container":
        self.add_module(str(len(self._modules)), m)
        return self

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class Sequential(_Container):
    """Calls its modules one after the other."""

    def __init__(self, *modules: Module):
        super().__init__()
        for m in modules:
            self.append(m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x


class ModuleList(_Container):
    """Holds modules so their parameters are registered; calling order is up to the owner."""

    def __init__(self, modules=None):
        super().__init__()
        self.extend(modules or [])

    def extend(self, ms) -> "ModuleList":
        for m in ms:
            self.append(m)
        return self
