"""Functional forms of layers and activations, with PyTorch's names and argument order."""
from __future__ import annotations

from ..tensor import pad
from ..tensor.tensor import Tensor


def relu(x: Tensor) -> Tensor:
    return x.relu()


def sigmoid(x: Tensor) -> Tensor:
    return x.sigmoid()


def tanh(x: Tensor) -> Tensor:
    return x.tanh()


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    return x.softplus(beta, threshold)


def softmax(x: Tensor, dim: int) -> Tensor:
    return x.softmax(dim)


def log_softmax(x: Tensor, dim: int) -> Tensor:
    return x.log_softmax(dim)


__all__ = ["pad", "relu", "sigmoid", "tanh", "softplus", "softmax", "log_softmax"]
