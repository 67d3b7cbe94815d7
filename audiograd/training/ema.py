"""Exponential moving average of a module's weights with ema_pytorch's warm-up schedule
(the ``EMA`` that stable-audio-tools' autoencoder training uses)."""
from __future__ import annotations

from typing import Dict

import numpy as np

from ..nn.module import Module
from ..tensor.autograd import no_grad
from ..tensor.tensor import Tensor, realize_all


class EMA:
    """Shadow copies of every floating parameter of ``model``.

    ``update()`` counts calls: the first ``update_after_step + 1`` of them (and the first after
    that) copy the weights; later ones move each shadow towards the weights by ``1 - decay`` with
    ``decay = min(beta, 1 - (1 + epoch / inv_gamma) ** -power)``, ``epoch = calls - update_after_step - 1``.
    Unlike ema_pytorch 0.2.3, float64 weights are averaged too (it averages only float32/float16).
    """

    def __init__(self, model: Module, beta: float = 0.9999, update_after_step: int = 100, update_every: int = 10,
                 inv_gamma: float = 1.0, power: float = 2 / 3, min_value: float = 0.0):
        self.model, self.beta, self.update_after_step, self.update_every = model, beta, update_after_step, update_every
        self.inv_gamma, self.power, self.min_value = inv_gamma, power, min_value
        self.step, self.initted = 0, False
        self.shadow: Dict[str, Tensor] = {k: _copy(p) for k, p in model.named_parameters() if p.dtype.is_float}

    def current_decay(self) -> float:
        """The decay the next average uses (``step`` already counts the current call)."""
        epoch = max(self.step - self.update_after_step - 1, 0.0)
        if epoch <= 0:
            return 0.0
        value = 1 - (1 + epoch / self.inv_gamma) ** -self.power
        return min(max(value, self.min_value), self.beta)

    def update(self) -> None:
        """Advance the schedule by one call and update the shadows (copy or average)."""
        step = self.step
        self.step += 1
        if step % self.update_every:
            return
        if step <= self.update_after_step:
            self._copy_from_model()
            return
        if not self.initted:
            self._copy_from_model()
            self.initted = True
        weight = 1.0 - self.current_decay()
        with no_grad():
            for name, p in self.model.named_parameters():
                if name in self.shadow:
                    s = self.shadow[name]
                    w = float(np.dtype(s.dtype.np).type(weight))  # the weight in the shadow's precision
                    # torch's lerp: start + w * (end - start), or end - (end - start) * (1 - w) for w >= 0.5
                    s.assign(s + (p.detach() - s) * w if weight < 0.5 else p.detach() - (p.detach() - s) * (1 - w))
        _realize(self.shadow.values())

    def _copy_from_model(self) -> None:
        self.shadow = {k: _copy(p) for k, p in self.model.named_parameters() if k in self.shadow}

    def state_dict(self) -> dict:
        """The shadows (by parameter name) and the schedule's position."""
        return {"shadow": dict(self.shadow), "step": self.step, "initted": self.initted}

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned (shadows as tensors or arrays)."""
        missing = sorted(set(self.shadow) - set(state["shadow"]))
        if missing:
            raise KeyError(f"EMA state lacks {len(missing)} weights, e.g. {missing[:3]}")
        for k, v in state["shadow"].items():
            if k in self.shadow:
                arr = v.numpy() if isinstance(v, Tensor) else np.asarray(v)
                if arr.shape != tuple(self.shadow[k].shape):
                    raise ValueError(f"EMA state: {k} has shape {arr.shape}, the model {tuple(self.shadow[k].shape)}")
                self.shadow[k].assign(Tensor(arr, dtype=self.shadow[k].dtype, device=self.shadow[k].device))
        _realize(self.shadow.values())
        self.step, self.initted = int(state["step"]), bool(state["initted"])


def _copy(p: Tensor) -> Tensor:
    return Tensor(p.detach().numpy().copy(), dtype=p.dtype, device=p.device)


def _realize(tensors) -> None:
    realize_all(list(tensors))
