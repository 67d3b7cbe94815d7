"""Lazy tensors with PyTorch's names, and reverse-mode autograd."""
from .autograd import enable_grad, is_grad_enabled, no_grad
from .creation import (arange, eye, full, full_like, linspace, manual_seed, ones, ones_like, rand, randn,
                       tensor, zeros, zeros_like)
from .errors import ShapeError
from .device import set_default_device, using_device
from .movement import cat, pad, stack
from .tensor import Tensor, realize_all, where
