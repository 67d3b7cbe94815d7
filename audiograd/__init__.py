"""audiograd: tensor programs compiled to fused native kernels, with autograd."""
from .config import config
from .dtypes import DType, bool_ as bool, float32, float64, int32, int64
from .tensor import (ShapeError, Tensor, arange, cat, enable_grad, eye, full, full_like, is_grad_enabled,
                     linspace, manual_seed, no_grad, ones, ones_like, rand, randn, realize_all, set_default_device,
                     stack, tensor, using_device, where, zeros, zeros_like)
from .jit import jit
from . import dsp, losses, nn, optim  # subpackages reachable as audiograd.nn, audiograd.optim, ...

__version__ = "0.1.0"
