"""Gradient clipping by total norm (``torch.nn.utils.clip_grad_norm_``)."""
from __future__ import annotations

import math
from typing import Iterable, Union

from ..tensor.autograd import no_grad
from ..tensor.tensor import Tensor, realize_all


def clip_grad_norm_(parameters: Union[Tensor, Iterable[Tensor]], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale the gradients of ``parameters`` in place so that their joint ``norm_type``-norm is at
    most ``max_norm``; returns the norm before clipping as a 0-d tensor.

    As in PyTorch, the scale is ``min(1, max_norm / (total_norm + 1e-6))``, and the norm is the
    norm of the per-parameter norms (``inf`` takes the largest absolute value).
    """
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return Tensor(0.0)
    norm_type = float(norm_type)
    with no_grad():
        grads = [g.detach() for g in grads]
        if norm_type == math.inf:
            norms = [g.abs().max() for g in grads]
            total = norms[0]
            for n in norms[1:]:
                total = total.maximum(n)
        else:
            norms = [(g.abs() ** norm_type).sum() ** (1.0 / norm_type) for g in grads]
            acc = norms[0].to(grads[0].dtype) ** norm_type
            for n in norms[1:]:
                acc = acc + n ** norm_type
            total = acc ** (1.0 / norm_type)
        total = total.realize()
        if error_if_nonfinite and not math.isfinite(total.item()):
            raise RuntimeError(f"the total norm of order {norm_type} for gradients is non-finite, "
                               "so it cannot be clipped")
        coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
        for p, g in zip([p for p in params if p.grad is not None], grads):
            g.assign(g * coef.to(g.dtype))
            p.grad = g
        realize_all(grads)
    return total
