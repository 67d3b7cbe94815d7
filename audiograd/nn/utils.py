"""Weight normalization in both of PyTorch's forms, so their state dicts load unchanged.

- ``weight_norm`` (``torch.nn.utils.weight_norm``): parameters ``<name>_g`` and ``<name>_v``.
- ``parametrizations.weight_norm`` (``torch.nn.utils.parametrizations.weight_norm``):
  ``parametrizations.<name>.original0`` (g) and ``original1`` (v).
In both, ``weight = v * (g / ||v||)`` with the norm over every dim except ``dim`` (over all
dims for ``dim=None``), recomputed from g and v on every access that records gradients. When
no gradient is recorded (``no_grad``, or g and v frozen) the weight is computed once and
reused until g or v change (an ``assign`` or ``load_state_dict`` gives them new graph nodes),
as ONNX Runtime folds it at load time. A module of either form also accepts the other form's
keys in ``load_state_dict``.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Optional

from ..tensor.autograd import is_grad_enabled
from ..tensor.tensor import Tensor
from .module import Module, Parameter


class _NormedWeight:
    """``v * (g / ||v||)`` for one module weight, cached while g and v stay the same and no
    gradient is being recorded."""

    def __init__(self, get_g, get_v, dim: Optional[int]):
        self.get_g, self.get_v, self.dim = get_g, get_v, dim
        self.cached = None  # (g node, v node, weight)

    def __call__(self) -> Tensor:
        g, v = self.get_g(), self.get_v()
        if is_grad_enabled() and (g.requires_grad or v.requires_grad):
            self.cached = None
            return v * (g / norm_except_dim(v, self.dim))
        if self.cached is not None and self.cached[0] is g.node and self.cached[1] is v.node:
            return self.cached[2]
        w = v.detach() * (g.detach() / norm_except_dim(v.detach(), self.dim))
        self.cached = (g.node, v.node, w)
        return w


def norm_except_dim(v: Tensor, dim: Optional[int]) -> Tensor:
    """The 2-norm of ``v`` over every dim but ``dim`` (kept as size 1), or over all for None."""
    if dim is None:
        return (v * v).sum().sqrt()
    d = dim % v.ndim
    axes = tuple(i for i in range(v.ndim) if i != d)
    return (v * v).sum(axes, keepdim=True).sqrt()


def _check(module: Module, name: str) -> Parameter:
    w = module._parameters.get(name)
    if not isinstance(w, Parameter):
        raise ValueError(f"weight_norm: {type(module).__name__} has no parameter named {name!r}")
    return w


def weight_norm(module: Module, name: str = "weight", dim: Optional[int] = 0) -> Module:
    """Replace parameter ``name`` by ``name_g`` (magnitude) and ``name_v`` (direction)."""
    w = _check(module, name)
    del module._parameters[name]
    g = Parameter(norm_except_dim(w.detach(), dim).realize())
    v = Parameter(w.detach())
    setattr(module, name + "_g", g)
    setattr(module, name + "_v", v)
    module.__dict__.setdefault("_derived", {})[name] = _NormedWeight(
        lambda: getattr(module, name + "_g"), lambda: getattr(module, name + "_v"), dim)
    aliases = module.__dict__.setdefault("_key_aliases", {})
    aliases[f"parametrizations.{name}.original0"] = name + "_g"
    aliases[f"parametrizations.{name}.original1"] = name + "_v"
    return module


def remove_weight_norm(module: Module, name: str = "weight") -> Module:
    """Fold g and v back into a plain parameter ``name``."""
    derived = module.__dict__.get("_derived", {})
    if name not in derived:
        raise ValueError(f"remove_weight_norm: weight_norm of {name!r} not found in {type(module).__name__}")
    w = derived.pop(name)().detach().realize()
    for suffix in ("_g", "_v"):
        del module._parameters[name + suffix]
    for k in [k for k in module.__dict__.get("_key_aliases", {}) if k.startswith(f"parametrizations.{name}.")]:
        del module._key_aliases[k]
    setattr(module, name, Parameter(w))
    return module


class _ParametrizationList(Module):
    """Holds ``original0`` (g) and ``original1`` (v), as PyTorch's ParametrizationList does."""


def _parametrized_weight_norm(module: Module, name: str = "weight", dim: Optional[int] = 0) -> Module:
    w = _check(module, name)
    del module._parameters[name]
    holder = module._modules.get("parametrizations")
    if holder is None:
        holder = Module()
        module.add_module("parametrizations", holder)
    plist = _ParametrizationList()
    plist.original0 = Parameter(norm_except_dim(w.detach(), dim).realize())
    plist.original1 = Parameter(w.detach())
    holder.add_module(name, plist)
    module.__dict__.setdefault("_derived", {})[name] = _NormedWeight(lambda: plist.original0,
                                                                    lambda: plist.original1, dim)
    aliases = module.__dict__.setdefault("_key_aliases", {})
    aliases[name + "_g"] = f"parametrizations.{name}.original0"
    aliases[name + "_v"] = f"parametrizations.{name}.original1"
    return module


parametrizations = SimpleNamespace(weight_norm=_parametrized_weight_norm)
from ..optim.clip import clip_grad_norm_  # noqa: E402,F401
