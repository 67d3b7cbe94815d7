"""The Oobleck discriminator of stable-audio-tools: multi-scale (1-D) and multi-period (2-D)
convolutional discriminators run on reals and fakes in one batch, with hinge losses.

Names, constructor arguments and module nesting follow the original, so its state-dict keys
(``multi_discriminator.discriminators.<i>.layers.<j>.net.<k>.weight_g`` ...) load unchanged.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Sequence, Tuple

from ... import nn
from ...nn import functional as F
from ...tensor.movement import cat, pad
from ...tensor.tensor import Tensor
from .losses import get_hinge_losses, l1_distance


class SharedDiscriminatorConvNet(nn.Module):
    """``n_layers`` weight-normed strided convolutions with activations and a final 1-wide one;
    returns the mean of the final map per batch item and every convolution's (pre-activation) output.

    As in the original, an int ``kernel_size`` with ``nn.Conv2d`` gives a square kernel, padding and
    stride on both axes."""

    def __init__(self, in_size: int, convolution, out_size: int = 1, capacity: int = 32, n_layers: int = 4,
                 kernel_size=15, stride=4, activation: Callable[[], nn.Module] = nn.SiLU,
                 normalization: Callable[[nn.Module], nn.Module] = nn.utils.weight_norm):
        super().__init__()
        channels = [in_size] + [capacity * 2 ** i for i in range(n_layers)]
        strides = n_layers * [stride] if isinstance(stride, int) else list(stride)
        net = []
        for i in range(n_layers):
            if isinstance(kernel_size, int):
                padding, s = kernel_size // 2, strides[i]
            else:
                padding, s = kernel_size[0] // 2, (strides[i], 1)
            net.append(normalization(convolution(channels[i], channels[i + 1], kernel_size, stride=s,
                                                 padding=padding)))
            net.append(activation())
        net.append(convolution(channels[-1], out_size, 1))
        self.net = nn.ModuleList(net)

    def forward(self, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
        features = []
        for layer in self.net:
            x = layer(x)
            if isinstance(layer, (nn.Conv1d, nn.Conv2d)):
                features.append(x)
        return x.reshape(x.shape[0], -1).mean(-1), features


class MultiScaleDiscriminator(nn.Module):
    """One 1-D conv net per scale, each on the audio average-pooled by 2 once more than the last."""

    def __init__(self, in_channels: int, n_scales: int, **conv_kwargs):
        super().__init__()
        self.layers = nn.ModuleList([SharedDiscriminatorConvNet(in_channels, nn.Conv1d, **conv_kwargs)
                                     for _ in range(n_scales)])

    def forward(self, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
        score, features = 0, []
        for layer in self.layers:
            s, f = layer(x)
            score = score + s
            features.extend(f)
            x = F.avg_pool1d(x, 2)
        return score, features


class MultiPeriodDiscriminator(nn.Module):
    """One 2-D conv net per period ``n``, on the audio folded into rows of ``n`` samples."""

    def __init__(self, in_channels: int, periods: Sequence[int], **conv_kwargs):
        super().__init__()
        self.periods = list(periods)
        self.layers = nn.ModuleList([SharedDiscriminatorConvNet(in_channels, nn.Conv2d, **conv_kwargs)
                                     for _ in self.periods])

    def forward(self, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
        score, features = 0, []
        for layer, n in zip(self.layers, self.periods):
            s, f = layer(self.fold(x, n))
            score = score + s
            features.extend(f)
        return score, features

    @staticmethod
    def fold(x: Tensor, n: int) -> Tensor:
        """(batch, channels, time) zero-padded to a multiple of ``n`` -> (batch, channels, time / n, n)."""
        x = pad(x, (0, (n - x.shape[-1] % n) % n))
        return x.reshape(*x.shape[:2], -1, n)


class MultiDiscriminator(nn.Module):
    """Runs each discriminator once on the inputs named by ``keys`` concatenated along the batch,
    and adds ``score_<key>`` (summed over discriminators) and ``features_<key>`` (all feature maps)
    to the input dict."""

    def __init__(self, discriminator_list: Sequence[nn.Module], keys: Sequence[str]):
        super().__init__()
        self.discriminators = nn.ModuleList(list(discriminator_list))
        self.keys = list(keys)

    def _split(self, t: Tensor) -> List[Tensor]:
        n = t.shape[0] // len(self.keys)
        return [t[i * n:(i + 1) * n] for i in range(len(self.keys))]

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        shapes = {k: tuple(inputs[k].shape) for k in self.keys}
        if len(set(shapes.values())) != 1:
            raise ValueError(f"MultiDiscriminator: inputs differ in shape: {shapes}")
        x = cat([inputs[k] for k in self.keys], 0)
        scores = {k: 0 for k in self.keys}
        features = {k: [] for k in self.keys}
        for discriminator in self.discriminators:
            score, fmaps = discriminator(x)
            for k, s in zip(self.keys, self._split(score)):
                scores[k] = scores[k] + s
            for fmap in fmaps:
                for k, f in zip(self.keys, self._split(fmap)):
                    features[k].append(f)
        inputs.update({f"score_{k}": v for k, v in scores.items()})
        inputs.update({f"features_{k}": v for k, v in features.items()})
        return inputs


class OobleckDiscriminator(nn.Module):
    """Three scales and periods 2, 3, 5, 7, 11; ``loss(reals, fakes)`` gives the hinge losses and
    the feature-matching distance summed over every feature map."""

    def __init__(self, in_channels: int = 1):
        super().__init__()
        self.multi_discriminator = MultiDiscriminator(
            [MultiScaleDiscriminator(in_channels=in_channels, n_scales=3),
             MultiPeriodDiscriminator(in_channels=in_channels, periods=[2, 3, 5, 7, 11])],
            ["reals", "fakes"])

    def loss(self, reals: Tensor, fakes: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """``(discriminator loss, generator adversarial loss, feature-matching distance)``."""
        out = self.multi_discriminator({"reals": reals, "fakes": fakes})
        dis_loss, gen_loss = get_hinge_losses(out["score_reals"], out["score_fakes"])
        fm = None
        for real, fake in zip(out["features_reals"], out["features_fakes"]):
            d = l1_distance(real, fake)
            fm = d if fm is None else fm + d
        return dis_loss, gen_loss, fm
