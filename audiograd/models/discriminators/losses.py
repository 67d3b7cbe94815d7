"""The adversarial losses of stable-audio-tools' discriminators: hinge and feature matching."""
from __future__ import annotations

from typing import Sequence, Tuple

from ...tensor.tensor import Tensor


def get_hinge_losses(score_real: Tensor, score_fake: Tensor) -> Tuple[Tensor, Tensor]:
    """``(discriminator loss, generator loss)`` of the hinge GAN objective:
    ``mean(relu(1 - real)) + mean(relu(1 + fake))`` and ``-mean(fake)``."""
    gen_loss = -score_fake.mean()
    dis_loss = (1 - score_real).relu().mean() + (1 + score_fake).relu().mean()
    return dis_loss, gen_loss


def l1_distance(real: Tensor, fake: Tensor) -> Tensor:
    """Mean absolute difference of two feature maps (feature matching)."""
    return (real - fake).abs().mean()


def normalized_l1_distance(real: Tensor, fake: Tensor) -> Tensor:
    """Feature matching relative to the real features' mean magnitude (``normalize_losses``)."""
    return (real - fake).abs().mean() / (real.abs().mean() + 1e-3)


def feature_matching(features_real: Sequence[Tensor], features_fake: Sequence[Tensor], distance=l1_distance):
    """The mean over layers of ``distance(real, fake)``: one scale's feature-matching term."""
    total = None
    for real, fake in zip(features_real, features_fake):
        d = distance(real, fake)
        total = d if total is None else total + d
    return total / len(features_real)
