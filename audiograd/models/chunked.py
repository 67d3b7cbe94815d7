"""Encode and decode audio of any length with bounded memory, in overlapping chunks.

The Oobleck encoder and decoder are stacks of convolutions, so every output depends on a finite
window of the input (the receptive field). Each chunk is processed with a margin of extra
context on both sides and only its central part is kept:

- encoder: chunks of ``chunk_samples`` samples (a multiple of the downsampling ratio ``R``),
  each read with ``margin * R`` samples of context on both sides; the chunk's central
  ``chunk_samples / R`` latents are kept. Chunks start at multiples of ``R`` and the last one
  reads up to the true end of the input, so the result has ``floor(L / R)`` latents exactly
  like ``OobleckVAE.encode`` (no padding is needed: trailing samples that do not fill a
  latent still feed the last latents, as in the whole-file model);
- decoder: chunks of ``chunk`` latents with ``margin`` latents of context on both sides; the
  central ``chunk * R`` samples are kept, ``frames * R`` samples in all.

With the default ``margin=None`` the margin is the model's receptive field in latents
(:func:`receptive_field`: for Stable Audio Open 1.0, 9 latents for the encoder and 12 for the
decoder), so no kept output sees the chunk edges and the chunked result equals whole-file
processing up to float32 rounding. Measured on a small random-weight model (channels 8,
c_mults [1, 2], strides [2, 4], latent_dim 8, SnakeBeta; receptive field 18 / 21 latents;
1602 samples = 200 latents in chunks of 32 latents, ``tests/models/test_chunked.py``):
max |chunked - whole| / RMS(whole) is 1.3e-7 for the encoder and 6.7e-7 for the decoder (the
test bounds both at 1e-5). Margins below the receptive field leave audible seams: with 375
latents in chunks of 32, margins of 2 latents gave 0.84 (encoder) and 1.5 (decoder) times the
RMS, margins of 16 gave 9e-6 and 6e-4.

Windows near the ends are shifted inward so that all have the same length (the encoder's last
one also keeps the trailing samples), which lets one compiled program serve every chunk.

Progress: ``progress(done, total)`` counts *blocks*: the top-level stages of the encoder or
decoder (for SAO 1.0: the input convolution, five encoder/decoder blocks, the activation and
the output convolution; 8 per chunk) times the number of chunks, so even a single chunk,
which holds all the work of a short file, advances the bar stage by stage. It is first called
with ``done=0`` before any work, so the total is known up front. Only when a callback is given
is each stage's output computed on its own (the per-stage results are bit-identical to the
whole-stack run, ``tests/models/test_chunked.py``; measured on SAO 1.0 the time is the same).

Peak memory grows with ``chunk + 2 * margin``, not with the input length. Measured peak RSS
for the full SAO model (weights alone 0.74 GB) while the buffer pool could keep 4 GB of idle
blocks: 1.9 GB with 32-latent chunks (the same for 2 and 8 chunks), 2.6 GB with 64, 5.1 GB
with the default 128 (one minute of stereo audio). The pool now keeps at most
``config.buffer_pool_bytes`` (256 MB); the decoder alone then needs 0.73 GB at 128 latents
with no idle blocks and 1.7 GB with 1 GB of them.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Tuple

import numpy as np

from .. import nn
from ..tensor import no_grad
from ..tensor.tensor import Tensor

Progress = Optional[Callable[[int, int], None]]

DEFAULT_CHUNK_LATENTS = 128


def _spread(module: nn.Module, transposed_model: bool) -> Tuple[float, float]:
    """(left, right) reach of one output of ``module``'s convolution stack, in its output units
    for an encoder (``transposed_model=False``) or input units for a decoder."""
    left = right = 0.0
    rate = 1.0  # encoder: input samples per current sample; decoder: current samples per input
    for m in module.modules():
        if not isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)):
            continue
        (k,), (s,), (d,) = m.kernel_size, m.stride, m.dilation
        p = m.padding[0] if not isinstance(m.padding, str) else d * (k - 1) // 2
        if not transposed_model:  # output j reads inputs j*s - p ... j*s - p + d(k-1)
            left, right = left + p * rate, right + (d * (k - 1) - p) * rate
            rate *= s
        elif isinstance(m, nn.ConvTranspose1d):  # input i writes outputs i*s - p ... i*s - p + d(k-1)
            left, right = left + p / (rate * s), right + (d * (k - 1) - p) / (rate * s)
            rate *= s
        else:  # input i writes outputs i + p - d(k-1) ... i + p
            left, right = left + (d * (k - 1) - p) / rate, right + p / rate
    return left, right


def receptive_field(model) -> Tuple[int, int]:
    """Context in latents (encoder, decoder) beyond which inputs cannot change a kept output.

    With margins at least this large, chunked processing equals whole-file processing up to
    float rounding.
    """
    ratio = model.downsampling_ratio
    enc = math.ceil(max(_spread(model.encoder, False)) / ratio)
    dec = math.ceil(max(_spread(model.decoder, True))) + 1
    return enc, dec


def _stages(stack: nn.Module) -> list:
    """The top-level stages of an encoder/decoder stack (its ``layers`` Sequential), else the
    stack itself as one stage."""
    layers = getattr(stack, "layers", None)
    return list(layers) if isinstance(layers, nn.Sequential) else [stack]


def _run_stack(stack: nn.Module, x: Tensor, on_stage: Optional[Callable[[], None]]) -> Tensor:
    """``stack(x)``; with ``on_stage``, stage by stage, each computed and then reported."""
    if on_stage is None:
        return stack(x)
    for stage in _stages(stack):
        x = stage(x).realize()
        on_stage()
    return x


class _Counter:
    """Calls ``progress(done, total)`` once up front and then once per finished stage."""

    def __init__(self, progress: Progress, total: int):
        self.progress, self.total, self.done = progress, total, 0
        if progress is not None:
            progress(0, total)

    @property
    def step(self) -> Optional[Callable[[], None]]:
        return None if self.progress is None else self._step

    def _step(self) -> None:
        self.done += 1
        self.progress(self.done, self.total)


def _as_array(x, name: str) -> np.ndarray:
    arr = x.numpy() if isinstance(x, Tensor) else np.asarray(x)
    if arr.ndim != 3:
        raise ValueError(f"{name}: expected (batch, channels, time), got shape {tuple(arr.shape)}")
    return arr.astype(np.float32, copy=False)


def _spans(total: int, chunk: int):
    """[start, stop) of consecutive chunks covering ``total`` units."""
    return [(a, min(a + chunk, total)) for a in range(0, total, chunk)]


def _window(a: int, b: int, total: int, chunk: int, margin: int) -> Tuple[int, int]:
    """Latent window [first, stop) read to produce latents [a, b): ``margin`` on each side,
    shifted inward at the ends so that every window has the same length ``chunk + 2 * margin``
    (one compiled program serves all chunks)."""
    width = min(chunk + 2 * margin, total)
    first = min(max(a - margin, 0), total - width)
    return first, first + width


def encode_chunked(model, audio, chunk_samples: Optional[int] = None, margin: Optional[int] = None,
                   sample: bool = False, seed=None, progress: Progress = None) -> np.ndarray:
    """Latents (batch, latent_dim, floor(L / R)) of ``audio`` (batch, io_channels, L), in chunks.

    ``chunk_samples`` (default 128 latents' worth) must be a multiple of the downsampling ratio
    R; ``margin`` is the context in latents on each side (default: the encoder's receptive
    field). ``sample``/``seed`` draw z = mean + std * N(0, 1) with one noise array for the whole
    input, the same as ``OobleckVAE.encode(audio, sample=True, seed=seed)``; a list of seeds, one
    per batch item, draws each item's noise as a batch of one with its own seed would.
    ``progress(done, total)`` counts encoder stages over all chunks (see the module docstring).
    Returns float32 numpy.
    """
    ratio = model.downsampling_ratio
    x = _as_array(audio, "encode_chunked")
    if x.shape[1] != model.encoder.in_channels:
        raise ValueError(f"encode_chunked: audio has {x.shape[1]} channels, "
                         f"the encoder expects {model.encoder.in_channels}")
    chunk_samples = DEFAULT_CHUNK_LATENTS * ratio if chunk_samples is None else int(chunk_samples)
    if chunk_samples <= 0 or chunk_samples % ratio:
        raise ValueError(f"encode_chunked: chunk_samples {chunk_samples} is not a positive multiple "
                         f"of the downsampling ratio {ratio}")
    margin = receptive_field(model)[0] if margin is None else int(margin)
    if margin < 0:
        raise ValueError(f"encode_chunked: margin must be >= 0, got {margin}")
    length, frames, per = x.shape[2], x.shape[2] // ratio, chunk_samples // ratio
    device = next(model.parameters()).device
    raw = None
    spans = _spans(frames, per)
    counter = _Counter(progress, len(spans) * len(_stages(model.encoder)))
    with no_grad():
        for a, b in spans:
            first, stop = _window(a, b, frames, per, margin)
            end = length if stop == frames else stop * ratio  # the last window keeps the tail samples
            window = Tensor(np.ascontiguousarray(x[:, :, first * ratio:end]), device=device)
            out = _run_stack(model.encoder, window, counter.step).numpy()
            if raw is None:
                raw = np.empty((x.shape[0], out.shape[1], frames), dtype=np.float32)
            raw[:, :, a:b] = out[:, :, a - first:b - first]
    if raw is None:  # shorter than one latent
        return np.zeros((x.shape[0], model.latent_dim, 0), dtype=np.float32)
    half = raw.shape[1] // 2
    mean = raw[:, :half]
    if not sample:
        return np.ascontiguousarray(mean)
    scale = raw[:, half:]
    std = np.where(scale > 20, scale, np.log1p(np.exp(np.minimum(scale, 20)))) + np.float32(1e-4)
    if isinstance(seed, (list, tuple)):
        if len(seed) != mean.shape[0]:
            raise ValueError(f"encode_chunked: {len(seed)} seeds for a batch of {mean.shape[0]}")
        noise = np.stack([np.random.default_rng(s).standard_normal(mean.shape[1:], dtype=np.float64)
                          for s in seed]).astype(np.float32)
    else:
        noise = np.random.default_rng(seed).standard_normal(mean.shape, dtype=np.float64).astype(np.float32)
    return (mean + std * noise).astype(np.float32)


def decode_chunked(model, latents, chunk: int = DEFAULT_CHUNK_LATENTS, margin: Optional[int] = None,
                   progress: Progress = None) -> np.ndarray:
    """Audio (batch, io_channels, frames * R) from ``latents`` (batch, latent_dim, frames), in chunks.

    ``chunk`` latents are kept per chunk, each decoded with ``margin`` latents of context on
    both sides (default: the decoder's receptive field). ``progress(done, total)`` counts
    decoder stages over all chunks (see the module docstring). Returns float32 numpy.
    """
    ratio = model.downsampling_ratio
    z = _as_array(latents, "decode_chunked")
    if z.shape[1] != model.latent_dim:
        raise ValueError(f"decode_chunked: latents have {z.shape[1]} channels, the decoder expects "
                         f"{model.latent_dim}")
    if int(chunk) <= 0:
        raise ValueError(f"decode_chunked: chunk must be > 0, got {chunk}")
    margin = receptive_field(model)[1] if margin is None else int(margin)
    if margin < 0:
        raise ValueError(f"decode_chunked: margin must be >= 0, got {margin}")
    frames = z.shape[2]
    audio = np.zeros((z.shape[0], model.decoder.out_channels, frames * ratio), dtype=np.float32)
    spans = _spans(frames, int(chunk))
    counter = _Counter(progress, len(spans) * len(_stages(model.decoder)))
    device = next(model.parameters()).device
    with no_grad():
        for a, b in spans:
            first, stop = _window(a, b, frames, int(chunk), margin)
            window = model.bottleneck.decode(Tensor(np.ascontiguousarray(z[:, :, first:stop]), device=device))
            out = _run_stack(model.decoder, window, counter.step).numpy()
            if out.shape[2] != (stop - first) * ratio:
                raise ValueError(f"decode_chunked: decoder made {out.shape[2]} samples from {stop - first} "
                                 f"latents, expected {(stop - first) * ratio}")
            audio[:, :, a * ratio:b * ratio] = out[:, :, (a - first) * ratio:(b - first) * ratio]
    return audio
