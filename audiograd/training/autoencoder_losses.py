"""The generator and discriminator objectives of stable-audio-tools' autoencoder training,
assembled from a ``loss_configs`` object.

Terms and names as the original: ``loss_adv`` and ``feature_matching_loss`` (discriminator
weights ``adversarial``, ``feature_matching``), ``mrstft_loss`` (sum-and-difference MR-STFT for
stereo, plain MR-STFT for mono), ``stft_loss_left``/``stft_loss_right`` (per channel, half the
weight, stereo only), ``l1_time_loss``/``l2_time_loss`` when weighted, and ``kl_loss``. As in
the original, the spectral losses get (reals, decoded) in that order, each weight is a float32
value, and a term's ``decay`` multiplies its weight (in float32) at every generator step.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Tuple

import numpy as np

from ..losses import functional as LF
from ..losses.stft import MultiResolutionSTFTLoss, SumAndDifferenceSTFTLoss
from ..models.discriminators import EncodecDiscriminator, OobleckDiscriminator
from ..tensor.tensor import Tensor

_SCALES = [2048, 1024, 512, 256, 128, 64, 32]
DEFAULT_LOSS_CONFIG = {
    "discriminator": {"type": "encodec",
                      "config": {"n_ffts": _SCALES, "hop_lengths": [s // 4 for s in _SCALES],
                                 "win_lengths": _SCALES, "filters": 32},
                      "weights": {"adversarial": 0.1, "feature_matching": 5.0}},
    "spectral": {"type": "mrstft",
                 "config": {"fft_sizes": _SCALES, "hop_sizes": [s // 4 for s in _SCALES], "win_lengths": _SCALES,
                            "perceptual_weighting": True},
                 "weights": {"mrstft": 1.0}},
    "time": {"type": "l1", "config": {}, "weights": {"l1": 0.0}},
}
_KNOWN = {"discriminator", "spectral", "time", "bottleneck"}


class Term:
    """One weighted loss: ``weight * fn(info)``; ``decay`` scales the weight after each use."""

    def __init__(self, name: str, fn: Callable[[dict], Tensor], weight: float, decay: float = 1.0):
        self.name, self.fn = name, fn
        self.weight = np.float32(weight)
        self.decay = float(decay)

    def __call__(self, info: dict) -> Tensor:
        if self.decay != 1.0:
            self.weight = np.float32(self.weight * np.float32(self.decay))
        return float(self.weight) * self.fn(info)


def _section(config: dict, key: str) -> dict:
    value = config.get(key, {})
    if not isinstance(value, dict):
        raise ValueError(f"loss_configs.{key} must be an object, got {value!r}")
    return value


def build_discriminator(loss_config: dict, channels: int):
    """The discriminator that ``loss_configs.discriminator`` names (None without one)."""
    disc = loss_config.get("discriminator")
    if disc is None:
        return None
    kind, kwargs = disc.get("type"), dict(_section(disc, "config"))
    if kind == "encodec":
        return EncodecDiscriminator(in_channels=channels, **kwargs)
    if kind == "oobleck":
        return OobleckDiscriminator(**kwargs)
    raise NotImplementedError(f"discriminator type {kind!r} is not supported (only 'encodec' and 'oobleck')")


def generator_terms(loss_config: dict, channels: int, sample_rate: int, use_disc: bool) -> List[Term]:
    """The generator's loss terms in the original's order."""
    unknown = sorted(set(loss_config) - _KNOWN)
    if unknown:
        raise NotImplementedError(f"loss_configs: {', '.join(unknown)} losses are not supported "
                                  f"(supported: {', '.join(sorted(_KNOWN))})")
    terms = []
    if use_disc:
        weights = _section(loss_config["discriminator"], "weights")
        terms += [Term("loss_adv", lambda i: i["loss_adv"], weights["adversarial"]),
                  Term("feature_matching_loss", lambda i: i["feature_matching_distance"],
                       weights["feature_matching"])]
    spectral = _section(loss_config, "spectral")
    if spectral.get("type", "mrstft") != "mrstft":
        raise NotImplementedError(f"spectral loss type {spectral.get('type')!r} is not supported (only 'mrstft')")
    # stable-audio-tools trains with its own copy of auraloss, whose spectral convergence is per item
    stft_args = dict(_section(spectral, "config"), sample_rate=sample_rate, sc_per_item=True)
    weight, decay = _section(spectral, "weights")["mrstft"], spectral.get("decay", 1.0)
    if channels == 2:
        sdstft = SumAndDifferenceSTFTLoss(**stft_args)
        lrstft = MultiResolutionSTFTLoss(**stft_args)
        terms += [Term("mrstft_loss", lambda i: sdstft(i["reals"], i["decoded"]), weight, decay),
                  Term("stft_loss_left", lambda i: lrstft(i["reals"][:, 0:1], i["decoded"][:, 0:1]),
                       weight / 2, decay),
                  Term("stft_loss_right", lambda i: lrstft(i["reals"][:, 1:2], i["decoded"][:, 1:2]),
                       weight / 2, decay)]
    else:
        mrstft = MultiResolutionSTFTLoss(**stft_args)
        terms.append(Term("mrstft_loss", lambda i: mrstft(i["reals"], i["decoded"]), weight, decay))
    time = _section(loss_config, "time")
    time_weights, time_decay = _section(time, "weights"), time.get("decay", 1.0)
    if time_weights.get("l1", 0.0) > 0.0:
        terms.append(Term("l1_time_loss", lambda i: LF.l1_loss(i["reals"], i["decoded"]), time_weights["l1"],
                          time_decay))
    if time_weights.get("l2", 0.0) > 0.0:
        terms.append(Term("l2_time_loss", lambda i: LF.mse_loss(i["reals"], i["decoded"]), time_weights["l2"],
                          time_decay))
    kl_weight = _section(_section(loss_config, "bottleneck"), "weights").get("kl", 1e-6)
    terms.append(Term("kl_loss", lambda i: i["kl"], kl_weight))
    return terms


def total_loss(terms: List[Term], info: dict) -> Tuple[Tensor, Dict[str, Tensor]]:
    """The sum of the terms (in order) and each term by name."""
    total, parts = None, {}
    for term in terms:
        value = term(info)
        parts[term.name] = value
        total = value if total is None else total + value
    return total, parts
