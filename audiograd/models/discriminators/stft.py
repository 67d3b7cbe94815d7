"""EnCodec's multi-scale STFT discriminator, as stable-audio-tools builds it (SAO's discriminator).

Each scale takes the complex STFT of the audio (Hann window, no centering, scaled by the window's
L2 norm as torchaudio's ``Spectrogram(normalized=True)`` does), stacks real and imaginary parts
as channels, and runs weight-normed 2-D convolutions over (frames, frequency) with dilations along
time. Module names and constructor arguments follow stable-audio-tools, so its state-dict keys
(``discriminators.discriminators.<i>.convs.<j>.conv.weight_g`` ...) load unchanged.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

from ... import nn
from ...dsp.stft import stft
from ...tensor.movement import cat
from ...tensor.tensor import Tensor
from .losses import feature_matching, get_hinge_losses, l1_distance, normalized_l1_distance


class NormConv2d(nn.Module):
    """A weight-normed ``Conv2d`` held as ``.conv`` (the nesting of the original's keys)."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.conv = nn.utils.weight_norm(nn.Conv2d(*args, **kwargs))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class ComplexSpectrogram(nn.Module):
    """torchaudio's ``Spectrogram(power=None, center=False)`` with a Hann window buffer (the key
    ``window`` of the original): ``forward(x)`` gives the (real, imaginary) STFT of (..., time),
    divided by the window's L2 norm when ``normalized``."""

    def __init__(self, n_fft: int, hop_length: int, win_length: int, normalized: bool):
        super().__init__()
        self.n_fft, self.hop_length, self.win_length, self.normalized = n_fft, hop_length, win_length, normalized
        periodic_hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win_length) / win_length)
        self.register_buffer("window", Tensor(periodic_hann.astype(np.float32)))

        self._host_window = None  # (window node, its values, 1 / L2 norm): read back once per window

    def _window(self):
        if self._host_window is None or self._host_window[0] is not self.window.node:
            values = self.window.numpy().astype(np.float64)
            self._host_window = (self.window.node, values, 1.0 / float(np.sqrt(np.sum(values ** 2))))
        return self._host_window[1:]

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        window, inverse_norm = self._window()
        re, im = stft(x, self.n_fft, self.hop_length, self.win_length, window=window, center=False)
        if self.normalized:
            re, im = re * inverse_norm, im * inverse_norm
        return re, im


def get_2d_padding(kernel_size: Sequence[int], dilation: Sequence[int] = (1, 1)) -> Tuple[int, int]:
    """The padding that keeps a dilated 2-D convolution's output the size of its input."""
    return ((kernel_size[0] - 1) * dilation[0]) // 2, ((kernel_size[1] - 1) * dilation[1]) // 2


def _activation(name: str, params: dict) -> nn.Module:
    layer = getattr(nn, name, None)
    if not (isinstance(layer, type) and issubclass(layer, nn.Module)):
        raise ValueError(f"DiscriminatorSTFT: unknown activation {name!r} (a layer name such as 'LeakyReLU')")
    return layer(**params)


class DiscriminatorSTFT(nn.Module):
    """One STFT scale: ``forward(x)`` of audio (batch, in_channels, time) returns the logits
    (batch, out_channels, frames, freq) and the list of activated feature maps."""

    def __init__(self, filters: int, in_channels: int = 1, out_channels: int = 1, n_fft: int = 1024,
                 hop_length: int = 256, win_length: int = 1024, max_filters: int = 1024, filters_scale: int = 1,
                 kernel_size: Sequence[int] = (3, 9), dilations: Sequence[int] = (1, 2, 4),
                 stride: Sequence[int] = (1, 1), normalized: bool = True, activation: str = "LeakyReLU",
                 activation_params: dict = None, spec_scale_pow: float = 0.0, **kwargs):
        super().__init__()
        if kwargs:
            raise TypeError(f"DiscriminatorSTFT: unsupported arguments {sorted(kwargs)}")
        if len(kernel_size) != 2 or len(stride) != 2:
            raise ValueError(f"DiscriminatorSTFT: kernel_size and stride must have two entries, "
                             f"got {tuple(kernel_size)} and {tuple(stride)}")
        kernel_size, stride = tuple(kernel_size), tuple(stride)
        self.filters, self.in_channels, self.out_channels = filters, in_channels, out_channels
        self.n_fft, self.hop_length, self.win_length = n_fft, hop_length, win_length
        self.normalized, self.spec_scale_pow = normalized, float(spec_scale_pow)
        self.activation = _activation(activation, {"negative_slope": 0.2} if activation_params is None
                                      else dict(activation_params))
        self.spec_transform = ComplexSpectrogram(n_fft, hop_length, win_length, normalized)

        if min(filters_scale * filters, max_filters) != filters:
            raise ValueError(f"DiscriminatorSTFT: filters_scale={filters_scale} and max_filters={max_filters} give "
                             f"convolutions whose channels do not chain (the first has {filters} outputs, the "
                             f"second {min(filters_scale * filters, max_filters)} inputs)")
        self.convs = nn.ModuleList()
        self.convs.append(NormConv2d(2 * in_channels, filters, kernel_size=kernel_size,
                                     padding=get_2d_padding(kernel_size)))
        in_chs = min(filters_scale * filters, max_filters)
        for i, dilation in enumerate(dilations):
            out_chs = min((filters_scale ** (i + 1)) * filters, max_filters)
            self.convs.append(NormConv2d(in_chs, out_chs, kernel_size=kernel_size, stride=stride,
                                         dilation=(dilation, 1),
                                         padding=get_2d_padding(kernel_size, (dilation, 1))))
            in_chs = out_chs
        out_chs = min((filters_scale ** (len(dilations) + 1)) * filters, max_filters)
        square = (kernel_size[0], kernel_size[0])
        self.convs.append(NormConv2d(in_chs, out_chs, kernel_size=square, padding=get_2d_padding(square)))
        self.conv_post = NormConv2d(out_chs, out_channels, kernel_size=square, padding=get_2d_padding(square))

    def spectrogram(self, x: Tensor) -> Tensor:
        """Real and imaginary parts as channels: (batch, 2 * in_channels, frames, freq)."""
        if x.ndim != 3 or x.shape[1] != self.in_channels:
            raise ValueError(f"DiscriminatorSTFT: expected audio (batch, {self.in_channels}, time), "
                             f"got {tuple(x.shape)}")
        if x.shape[-1] < self.n_fft:
            raise ValueError(f"DiscriminatorSTFT: {x.shape[-1]} samples are fewer than n_fft={self.n_fft}")
        re, im = self.spec_transform(x)
        if self.spec_scale_pow != 0.0:
            gain = ((re * re + im * im).sqrt() + 1e-6) ** self.spec_scale_pow
            re, im = re * gain, im * gain
        return cat([re, im], 1).transpose(-1, -2)

    def forward(self, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
        z = self.spectrogram(x)
        fmap = []
        for layer in self.convs:
            z = self.activation(layer(z))
            fmap.append(z)
        return self.conv_post(z), fmap


class MultiScaleSTFTDiscriminator(nn.Module):
    """A ``DiscriminatorSTFT`` per (n_fft, hop_length, win_length): lists of logits and feature maps."""

    def __init__(self, filters: int, in_channels: int = 1, out_channels: int = 1,
                 n_ffts: Sequence[int] = (1024, 2048, 512), hop_lengths: Sequence[int] = (256, 512, 128),
                 win_lengths: Sequence[int] = (1024, 2048, 512), **kwargs):
        super().__init__()
        if not len(n_ffts) == len(hop_lengths) == len(win_lengths):
            raise ValueError(f"MultiScaleSTFTDiscriminator: n_ffts, hop_lengths and win_lengths differ in length "
                             f"({len(n_ffts)}, {len(hop_lengths)}, {len(win_lengths)})")
        self.discriminators = nn.ModuleList([
            DiscriminatorSTFT(filters, in_channels=in_channels, out_channels=out_channels, n_fft=n, hop_length=h,
                              win_length=w, **kwargs)
            for n, h, w in zip(n_ffts, hop_lengths, win_lengths)])
        self.num_discriminators = len(self.discriminators)

    def forward(self, x: Tensor):
        logits, fmaps = [], []
        for disc in self.discriminators:
            logit, fmap = disc(x)
            logits.append(logit)
            fmaps.append(fmap)
        return logits, fmaps


class EncodecDiscriminator(nn.Module):
    """stable-audio-tools' ``EncodecDiscriminator``: the multi-scale STFT discriminator with hinge
    losses and feature matching averaged over scales (``loss(reals, fakes)``)."""

    def __init__(self, *args, normalize_losses: bool = False, loss_type: str = "hinge", **kwargs):
        super().__init__()
        if loss_type != "hinge":
            # stable-audio-tools names "rpgan" but its module never imports the function it calls
            raise NotImplementedError(f"EncodecDiscriminator: loss_type {loss_type!r} is not supported (only 'hinge')")
        self.discriminators = MultiScaleSTFTDiscriminator(*args, **kwargs)
        self.normalize_losses, self.loss_type = normalize_losses, loss_type
        self._distance = normalized_l1_distance if normalize_losses else l1_distance

    def forward(self, x: Tensor):
        return self.discriminators(x)

    def loss(self, reals: Tensor, fakes: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """``(discriminator loss, generator adversarial loss, feature-matching distance)``."""
        if tuple(reals.shape) != tuple(fakes.shape):
            raise ValueError(f"EncodecDiscriminator.loss: reals {tuple(reals.shape)} and fakes "
                             f"{tuple(fakes.shape)} differ in shape")
        logits_real, features_real = self.forward(reals)
        logits_fake, features_fake = self.forward(fakes)
        dis_loss = adv_loss = fm = None
        for lr, lf, fr, ff in zip(logits_real, logits_fake, features_real, features_fake):
            d, a = get_hinge_losses(lr, lf)
            f = feature_matching(fr, ff, self._distance)
            dis_loss, adv_loss, fm = ((d, a, f) if dis_loss is None else (dis_loss + d, adv_loss + a, fm + f))
        n = len(logits_real)
        return dis_loss / n, adv_loss / n, fm / n
