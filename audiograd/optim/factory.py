"""Optimizers and schedulers from stable-audio-tools' config objects (``{"type": ..., "config": {...}}``)."""
from __future__ import annotations

from . import lr_scheduler
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .sgd import SGD

OPTIMIZERS = {"Adam": Adam, "AdamW": AdamW, "SGD": SGD}
SCHEDULERS = {name: getattr(lr_scheduler, name)
              for name in ("ExponentialLR", "InverseLR", "StepLR", "CosineAnnealingLR")}


def _build(kind: str, table: dict, config, *first):
    if not isinstance(config, dict) or not isinstance(config.get("type"), str):
        raise ValueError(f"{kind} config must be an object with a string 'type', got {config!r}")
    cls = table.get(config["type"])
    if cls is None:
        raise ValueError(f"{kind} type {config['type']!r} is not supported (supported: {', '.join(sorted(table))})")
    kwargs = config.get("config", {})
    if not isinstance(kwargs, dict):
        raise ValueError(f"{kind} {config['type']}: 'config' must be an object, got {kwargs!r}")
    if "betas" in kwargs:
        kwargs = dict(kwargs, betas=tuple(kwargs["betas"]))
    try:
        return cls(*first, **kwargs)
    except TypeError as e:
        raise ValueError(f"{kind} {config['type']}: bad arguments {sorted(kwargs)} ({e})") from None


def create_optimizer_from_config(config: dict, parameters) -> Optimizer:
    """``torch.optim.<type>(parameters, **config)`` for the types audiograd implements."""
    return _build("optimizer", OPTIMIZERS, config, list(parameters))


def create_scheduler_from_config(config: dict, optimizer: Optimizer) -> lr_scheduler.LRScheduler:
    """A learning-rate scheduler (stable-audio-tools' InverseLR or a ``torch.optim.lr_scheduler`` one)."""
    return _build("scheduler", SCHEDULERS, config, optimizer)
