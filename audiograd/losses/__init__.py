"""Loss functions with PyTorch's names, arguments and defaults, built from tensor ops.

Every loss is composed of existing differentiable ops (log_softmax, where, sum...), so
gradients with respect to the input (and the target, where PyTorch allows it) come from
autograd.
"""
from .functional import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, l1_loss,
                         mse_loss)
from .modules import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss
from .stft import MultiResolutionSTFTLoss, STFTLoss, SumAndDifferenceSTFTLoss

__all__ = ["mse_loss", "l1_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy",
           "MSELoss", "L1Loss", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss",
           "STFTLoss", "MultiResolutionSTFTLoss", "SumAndDifferenceSTFTLoss"]
