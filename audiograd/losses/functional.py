"""Functional losses: ``mse_loss``, ``l1_loss``, ``binary_cross_entropy``,
``binary_cross_entropy_with_logits`` and ``cross_entropy``, matching ``torch.nn.functional``."""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np

from .. import dtypes as dt
from ..tensor.creation import arange
from ..tensor.errors import ShapeError, broadcast_shapes
from ..tensor.tensor import Tensor, where

_REDUCTIONS = ("mean", "sum", "none")


def _legacy_reduction(size_average, reduce, reduction: str) -> str:
    """PyTorch's mapping of the deprecated ``size_average``/``reduce`` flags onto ``reduction``."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if size_average and reduce:
        return "mean"
    return "sum" if reduce else "none"


def _check_reduction(op: str, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: {reduction!r} is not a valid value for reduction "
                         f"(expected one of {', '.join(map(repr, _REDUCTIONS))})")


def _as_tensor(op: str, name: str, x) -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (np.ndarray, list, tuple, int, float)):
        return Tensor(np.asarray(x))
    raise TypeError(f"{op}: {name} must be a Tensor, got {type(x).__name__}")


def _check_float(op: str, name: str, x: Tensor) -> None:
    if not x.dtype.is_float:
        raise TypeError(f"{op}: {name} must be a floating point tensor, got {x.dtype.name}")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _pointwise_operands(op: str, input, target):
    """Input and target of an element-wise loss; like PyTorch, differing but broadcastable shapes warn."""
    input, target = _as_tensor(op, "input", input), _as_tensor(op, "target", target)
    if tuple(input.shape) != tuple(target.shape):
        try:
            broadcast_shapes(op, input.shape, target.shape)
        except ShapeError:
            raise ShapeError(f"{op}: input shape {tuple(input.shape)} and target shape {tuple(target.shape)} "
                             f"cannot be broadcast together") from None
        warnings.warn(f"{op}: using a target size {tuple(target.shape)} that is different to the input size "
                      f"{tuple(input.shape)}; this will likely lead to incorrect results due to broadcasting. "
                      f"Please ensure they have the same size.", UserWarning, stacklevel=4)
    return input, target


def _weighted_reduce(op: str, loss: Tensor, input: Tensor, weight, reduction: str) -> Tensor:
    """PyTorch's weighted mse/l1: ``weight`` has the input's shape; 'mean' divides by ``weight.sum()``."""
    if weight is None:
        return _reduce(loss, reduction)
    weight = _as_tensor(op, "weight", weight)
    if tuple(weight.shape) != tuple(input.shape):
        raise ShapeError(f"{op}: weight shape {tuple(weight.shape)} must be the same as input shape "
                         f"{tuple(input.shape)}")
    loss = loss * weight
    if reduction == "mean":
        return loss.sum() / weight.sum()
    return _reduce(loss, reduction)


def _pointwise_loss(op: str, error, input, target, size_average, reduce, reduction, weight) -> Tensor:
    """``error(input - target)`` elementwise, optionally weighted, then reduced (mse and l1)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(op, reduction)
    input, target = _pointwise_operands(op, input, target)
    return _weighted_reduce(op, error(input - target), input, weight, reduction)


def mse_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
             weight: Optional[Tensor] = None) -> Tensor:
    """Squared error ``(input - target) ** 2``, optionally times ``weight``, then reduced.

    ``reduction`` is 'mean' (default), 'sum' or 'none'. ``weight`` (input's shape) makes 'mean'
    ``sum(weight * err) / sum(weight)``, as in PyTorch. Differing input/target shapes broadcast with a warning,
    as in PyTorch; shapes that cannot broadcast raise ShapeError.
    """
    return _pointwise_loss("mse_loss", lambda d: d * d, input, target, size_average, reduce, reduction, weight)


def l1_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
            weight: Optional[Tensor] = None) -> Tensor:
    """Absolute error ``|input - target|``, optionally times ``weight``, then reduced.

    ``reduction`` is 'mean' (default), 'sum' or 'none'. ``weight`` (input's shape) makes 'mean'
    ``sum(weight * err) / sum(weight)``, as in PyTorch. Differing input/target shapes broadcast with a warning,
    as in PyTorch; shapes that cannot broadcast raise ShapeError.
    """
    return _pointwise_loss("l1_loss", lambda d: d.abs(), input, target, size_average, reduce, reduction, weight)


def _same_shape(op: str, input: Tensor, target: Tensor) -> None:
    if tuple(input.shape) != tuple(target.shape):
        raise ShapeError(f"{op}: target shape {tuple(target.shape)} must be the same as input shape "
                         f"{tuple(input.shape)}")


def _check_broadcast_to(op: str, name: str, w: Tensor, shape) -> None:
    try:
        out = broadcast_shapes(op, w.shape, shape)
    except ShapeError:
        out = None
    if out != tuple(shape):
        raise ShapeError(f"{op}: {name} of shape {tuple(w.shape)} does not broadcast to input shape {tuple(shape)}")


def _binary_operands(op: str, input, target, size_average, reduce, reduction: str):
    """Checked (input, target, reduction) of a binary cross entropy: same shapes, float input."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(op, reduction)
    input, target = _as_tensor(op, "input", input), _as_tensor(op, "target", target)
    _same_shape(op, input, target)
    _check_float(op, "input", input)
    return input, target, reduction


def _weighted_binary_reduce(op: str, loss: Tensor, input: Tensor, weight, reduction: str) -> Tensor:
    """``loss`` times the optional ``weight`` (broadcast to the input's shape), then reduced."""
    if weight is not None:
        weight = _as_tensor(op, "weight", weight)
        _check_broadcast_to(op, "weight", weight, input.shape)
        loss = loss * weight
    return _reduce(loss, reduction)


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Optional[Tensor] = None, size_average=None,
                         reduce=None, reduction: str = "mean") -> Tensor:
    """Binary cross entropy between probabilities ``input`` and ``target`` (same shape).

    ``-weight * (target * log(input) + (1 - target) * log(1 - input))``, with each log clamped to
    >= -100 as in PyTorch so that probabilities of exactly 0 or 1 give a finite loss.
    ``weight`` (optional) broadcasts to the input's shape. ``reduction``: 'mean' | 'sum' | 'none'.
    """
    op = "binary_cross_entropy"
    input, target, reduction = _binary_operands(op, input, target, size_average, reduce, reduction)
    log_p = input.log().clamp(min=-100.0)
    log_q = (-input).log1p().clamp(min=-100.0)
    loss = -(target * log_p + (1 - target) * log_q)
    return _weighted_binary_reduce(op, loss, input, weight, reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                                     size_average=None, reduce=None, reduction: str = "mean",
                                     pos_weight: Optional[Tensor] = None) -> Tensor:
    """Binary cross entropy of ``sigmoid(input)`` against ``target``, computed stably from logits.

    ``(1 - target) * input + (1 + (pos_weight - 1) * target) * softplus(-input)``, with
    ``softplus(-x) = max(-x, 0) + log1p(exp(-|x|))``. ``pos_weight`` weighs positive examples
    (broadcast along the last, class, dimension); ``weight`` rescales each element's loss.
    ``reduction``: 'mean' | 'sum' | 'none'.
    """
    op = "binary_cross_entropy_with_logits"
    input, target, reduction = _binary_operands(op, input, target, size_average, reduce, reduction)
    neg_log_sigmoid = (-input).relu() + (-input.abs()).exp().log1p()
    if pos_weight is not None:
        pos_weight = _as_tensor(op, "pos_weight", pos_weight)
        _check_broadcast_to(op, "pos_weight", pos_weight, input.shape)
        loss = (1 - target) * input + ((pos_weight - 1) * target + 1) * neg_log_sigmoid
    else:
        loss = (1 - target) * input + neg_log_sigmoid
    return _weighted_binary_reduce(op, loss, input, weight, reduction)


def cross_entropy(input: Tensor, target: Tensor, weight: Optional[Tensor] = None, size_average=None,
                  ignore_index: int = -100, reduce=None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross entropy between logits ``input`` and ``target``, exactly as ``torch.nn.functional.cross_entropy``.

    ``input`` has shape (C,), (N, C) or (N, C, d1, d2, ...) (class dim 1, or 0 when unbatched).
    ``target`` is either class indices (int64, shape (), (N,) or (N, d1, ...)) or class probabilities
    (float, same shape as ``input``).

    * ``weight`` (shape (C,)) rescales each class. With indices and 'mean', the sum of losses is
      divided by the sum of the target classes' weights (ignored elements excluded); with
      probabilities 'mean' divides by the number of elements N * d1 * ...
    * ``ignore_index``: targets with this index contribute nothing (and are left out of the mean's
      denominator). Only for index targets.
    * ``label_smoothing`` in [0, 1]: mixes the target with the uniform distribution, i.e.
      ``(1 - eps) * nll + eps / C * smooth`` where ``smooth = -sum_c weight_c * log_softmax_c``
      (zero for ignored elements, reduced with the same denominator as the nll).
    * ``reduction``: 'mean' | 'sum' | 'none'.

    Out-of-range class indices raise IndexError (the target's values are read to check them).
    """
    op = "cross_entropy"
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(op, reduction)
    input, target = _as_tensor(op, "input", input), _as_tensor(op, "target", target)
    _check_float(op, "input", input)
    if input.ndim == 0:
        raise ShapeError(f"{op}: input must have at least 1 dim (classes), got shape {tuple(input.shape)}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    cdim = 1 if input.ndim >= 2 else 0
    C = input.shape[cdim]
    bshape = [1] * input.ndim
    bshape[cdim] = C
    w = None
    if weight is not None:
        weight = _as_tensor(op, "weight", weight)
        if tuple(weight.shape) != (C,):
            raise ShapeError(f"{op}: weight should have shape ({C},) (one entry per class), "
                             f"got {tuple(weight.shape)} for input shape {tuple(input.shape)}")
        w = weight.to(input.dtype).reshape(*bshape)
    logp = input.log_softmax(cdim)

    if tuple(target.shape) == tuple(input.shape) and target.dtype.is_float:
        # class probabilities
        if ignore_index >= 0:
            raise ValueError(f"{op}: ignore_index is not supported for class-probability (float) targets")
        if label_smoothing > 0:
            target = target * (1 - label_smoothing) + label_smoothing / C
        prod = logp * target
        if w is not None:
            prod = prod * w
        loss = -prod.sum(cdim)
        if reduction == "mean":
            n = input.numel() // C if C else 0
            return loss.sum() * (1.0 / n) if n else loss.sum() * float("nan")
        return _reduce(loss, reduction)

    # class indices
    expected = tuple(input.shape[:cdim]) + tuple(input.shape[cdim + 1:])
    if target.dtype.is_float:
        raise ShapeError(f"{op}: a float target holds class probabilities and must have the input's shape "
                         f"{tuple(input.shape)}, got target shape {tuple(target.shape)}")
    if target.dtype not in (dt.int64, dt.int32):
        raise TypeError(f"{op}: class-index target must be an integer (int64) tensor, got {target.dtype.name}")
    if tuple(target.shape) != expected:
        raise ShapeError(f"{op}: for input shape {tuple(input.shape)} the class-index target should have shape "
                         f"{expected}, got {tuple(target.shape)}")
    t = target.numpy()
    bad = (t != ignore_index) & ((t < 0) | (t >= C))
    if bad.any():
        raise IndexError(f"{op}: target index {int(t[bad].reshape(-1)[0])} is out of bounds for {C} classes "
                         f"(valid: 0..{C - 1}, or ignore_index={ignore_index})")
    target = target.to(dt.int64)
    tgt = target.unsqueeze(cdim)
    valid = target != ignore_index
    onehot = (tgt == arange(C, dtype=dt.int64).reshape(*bshape)) & valid.unsqueeze(cdim)
    picked = where(onehot, logp, 0.0)
    if w is not None:
        picked = picked * w
        tw = where(onehot, w, 0.0).sum(cdim)  # weight of each element's target class, 0 if ignored
    else:
        tw = valid.to(input.dtype)
    nll = -picked.sum(cdim)
    if label_smoothing > 0:
        smooth = logp * w if w is not None else logp
        smooth = where(valid, -smooth.sum(cdim), 0.0)
        loss = nll * (1 - label_smoothing) + smooth * (label_smoothing / C)
    else:
        loss = nll
    if reduction == "mean":
        return loss.sum() / tw.sum()
    return _reduce(loss, reduction)
