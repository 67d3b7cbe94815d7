"""Demo reconstructions of a training run: what the autoencoder makes of fixed clips, as sound,
as a number and as a picture.

At a step ``N`` it writes ``recon_N.wav`` (each real clip followed by its reconstruction, as
stable-audio-tools' demo callback lays them out) and ``recon_N.png`` (the loss curves so far
above the spectrograms of the first clip, real and reconstructed, mixed to mono), and returns
the reconstruction's multi-resolution STFT distance to the reals (auraloss's defaults).
The reconstruction decodes the posterior mean, so demos of one model repeat exactly.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List

import numpy as np

from ..audio.curve_image import curves_image
from ..audio.io import write_audio
from ..audio.png import write_png
from ..audio.spectrogram_image import BACKGROUND, comparison_image
from ..losses.stft import MultiResolutionSTFTLoss
from ..tensor.autograd import no_grad
from ..tensor.tensor import Tensor

_CURVES = 6  # at most this many loss curves in the picture


def reconstruct(model, reals: np.ndarray) -> np.ndarray:
    """``model``'s reconstruction of ``reals`` (batch, channels, samples), trimmed to its length
    (or shorter, where the model's stride does not divide the length)."""
    with no_grad():
        decoded = model.decode(model.encode(reals)).numpy()
    return decoded[..., :reals.shape[-1]].astype(np.float32)


def reconstruction_distance(reals: np.ndarray, decoded: np.ndarray) -> float:
    """Multi-resolution STFT distance (auraloss's default resolutions) of ``decoded`` to ``reals``."""
    with no_grad():
        loss = MultiResolutionSTFTLoss()(Tensor(decoded.astype(np.float64)), Tensor(reals.astype(np.float64)))
    return float(loss.item())


def _pad_width(image: np.ndarray, width: int) -> np.ndarray:
    return np.pad(image, ((0, 0), (0, width - image.shape[1]), (0, 0)), constant_values=BACKGROUND)


def demo_image(history: Dict[str, List[float]], real: np.ndarray, decoded: np.ndarray, sample_rate: int) -> np.ndarray:
    """The loss curves above the spectrograms of one clip, real and reconstructed (mono mixes)."""
    spectra = comparison_image([real.mean(0), decoded.mean(0)], ["REAL", "RECON"], sample_rate)
    names = [k for k in history if k.endswith("loss") and k != "loss"  # "loss" alternates generator/discriminator
             and any(math.isfinite(v) for v in history[k])][:_CURVES]
    curves = {k.replace("_loss", ""): [v for v in history[k] if math.isfinite(v)] for k in names}
    if "demo_mrstft" in history:
        curves["demo mrstft"] = history["demo_mrstft"]
    parts = [curves_image(curves, width=max(600, spectra.shape[1]))] if curves else []
    parts.append(spectra)
    width = max(p.shape[1] for p in parts)
    gap = np.full((8, width, 3), BACKGROUND, np.uint8)
    rows = []
    for i, p in enumerate(parts):
        rows += ([gap] if i else []) + [_pad_width(p, width)]
    return np.concatenate(rows, axis=0)


def write_demo(folder: Path, step: int, model, reals: np.ndarray, sample_rate: int,
               history: Dict[str, List[float]]) -> float:
    """Write ``recon_<step>.wav`` and ``.png`` into ``folder``; return the MR-STFT distance."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    decoded = reconstruct(model, reals)
    reals = reals[..., :decoded.shape[-1]]
    distance = reconstruction_distance(reals, decoded)
    interleaved = np.concatenate([clip for pair in zip(reals, decoded) for clip in pair], axis=-1)
    write_audio(folder / f"recon_{step:08d}.wav", np.clip(interleaved, -1.0, 1.0), sample_rate)
    shown = dict(history, demo_mrstft=list(history.get("demo_mrstft", [])) + [distance])
    write_png(folder / f"recon_{step:08d}.png", demo_image(shown, reals[0], decoded[0], sample_rate))
    return distance
