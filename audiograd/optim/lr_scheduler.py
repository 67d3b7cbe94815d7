"""Learning-rate schedulers (``torch.optim.lr_scheduler``) computed from their closed forms."""
from __future__ import annotations

import math
from typing import List

from .optimizer import Optimizer


class LRScheduler:
    """Base class: ``step()`` advances ``last_epoch`` and writes ``get_lr()`` into the groups."""

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        self.optimizer = optimizer
        if last_epoch == -1:
            for g in optimizer.param_groups:
                g.setdefault("initial_lr", g["lr"])
        elif any("initial_lr" not in g for g in optimizer.param_groups):
            raise KeyError("param 'initial_lr' is not specified in param_groups when resuming a scheduler")
        self.base_lrs: List[float] = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def get_lr(self) -> List[float]:
        """The learning rates of every group at ``last_epoch``."""
        raise NotImplementedError

    def get_last_lr(self) -> List[float]:
        """The learning rates last written into the optimizer."""
        return list(self._last_lr)

    def step(self) -> None:
        """Move to the next epoch and set each group's ``lr``."""
        self.last_epoch += 1
        for g, lr in zip(self.optimizer.param_groups, self.get_lr()):
            g["lr"] = lr
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]
        self.optimizer._sync_hyper()  # a jit-captured step reads the new rate on its next replay

    def state_dict(self) -> dict:
        """Everything but the optimizer."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what ``state_dict`` returned."""
        self.__dict__.update(state_dict)


class StepLR(LRScheduler):
    """``lr = base_lr * gamma ** (epoch // step_size)``."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        return [self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """``lr = lr * gamma`` at every step after the first, multiplied step by step as PyTorch
    does (not ``base_lr * gamma ** epoch``), so long runs round identically."""

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        if self.last_epoch == 0:
            return [g["lr"] for g in self.optimizer.param_groups]
        return [g["lr"] * self.gamma for g in self.optimizer.param_groups]


class InverseLR(LRScheduler):
    """stable-audio-tools' inverse decay with optional exponential warm-up:
    ``lr = (1 - warmup ** (epoch + 1)) * max(final_lr, base_lr * (1 + epoch / inv_gamma) ** -power)``."""

    def __init__(self, optimizer: Optimizer, inv_gamma: float = 1.0, power: float = 1.0, warmup: float = 0.0,
                 final_lr: float = 0.0, last_epoch: int = -1):
        if not 0.0 <= warmup < 1:
            raise ValueError(f"InverseLR: warmup must be in [0, 1), got {warmup}")
        self.inv_gamma, self.power, self.warmup, self.final_lr = inv_gamma, power, warmup, final_lr
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        warmup = 1 - self.warmup ** (self.last_epoch + 1)
        mult = (1 + self.last_epoch / self.inv_gamma) ** -self.power
        return [warmup * max(self.final_lr, base * mult) for base in self.base_lrs]
