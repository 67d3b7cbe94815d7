"""stable-audio-tools' ``AutoencoderTrainingWrapper`` as a test reference, run without a Trainer.

``training/autoencoders.py`` is imported unchanged. What it imports for logging, demos and other
losses (wandb, matplotlib plots, the HuBERT/PESQ/mel losses) gets stand-ins that raise if used.
It is a Lightning module with manual optimization: ``LightningModule`` is replaced by the part of
the Trainer's contract that ``training_step`` uses: ``optimizers()`` and ``lr_schedulers()`` as
``configure_optimizers`` returned them, ``manual_backward(loss)`` = ``loss.backward()``, and
``global_step`` = the number of optimizer steps so far (one per training step here, as the
Trainer counts them in manual optimization). ``reference()`` skips the calling module, with the
reason, when something it needs is missing.
"""
from __future__ import annotations

import importlib
import sys
import types

import pytest

from models.sat_reference import require_reference
from torchaudio_reference import import_torchaudio

ROOT = "stable_audio_tools"


def _standin(name: str, path=None, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__doc__ = "stand-in of a module the tested reference imports but never uses"
    mod.__spec__ = importlib.machinery.ModuleSpec(name, None)
    if path is not None:
        mod.__path__ = list(path)
    for key, value in attrs.items():
        setattr(mod, key, value)
    sys.modules[name] = mod
    return mod


def _unused(name: str):
    def fail(*args, **kwargs):
        raise RuntimeError(f"{name} is a test stand-in; the reference training step does not call it")
    return type(name, (), {"__init__": fail}) if name[:1].isupper() else fail


def _lightning(torch):
    class LightningModule(torch.nn.Module):
        """The Trainer's manual-optimization contract, as ``training_step`` uses it."""

        harness_step = 0
        harness_optimizers = harness_schedulers = None

        @property
        def global_step(self):
            return self.harness_step

        def optimizers(self):
            return self.harness_optimizers

        def lr_schedulers(self):
            return self.harness_schedulers

        def manual_backward(self, loss):
            loss.backward()

        def log_dict(self, *args, **kwargs):
            pass

    pl = _standin("pytorch_lightning", path=[], LightningModule=LightningModule, Callback=object)
    pl.loggers = _standin("pytorch_lightning.loggers", WandbLogger=_unused("WandbLogger"),
                          CometLogger=_unused("CometLogger"))
    pl.utilities = _standin("pytorch_lightning.utilities", path=[])
    pl.utilities.rank_zero = _standin("pytorch_lightning.utilities.rank_zero", rank_zero_only=lambda fn: fn)


def reference():
    """The ``training.autoencoders`` module of stable-audio-tools, imported through stand-ins."""
    ref = require_reference()
    if import_torchaudio() is None:
        pytest.skip("torchaudio is not installed (pip install --no-deps torchaudio)", allow_module_level=True)
    try:
        importlib.import_module("ema_pytorch")
    except ImportError:
        pytest.skip("ema-pytorch is not installed (pip install ema-pytorch==0.2.3)", allow_module_level=True)
    done = sys.modules.get(f"{ROOT}.training.autoencoders")
    if done is not None:
        return done
    base = list(sys.modules[ROOT].__path__)[0]
    _lightning(ref.torch)
    _standin("wandb")
    _standin(f"{ROOT}.interface", path=[f"{base}/interface"])
    _standin(f"{ROOT}.interface.aeiou", **{n: _unused(n) for n in
                                          ("audio_spectrogram_image", "tokens_spectrogram_image", "pca_point_cloud")})
    _standin(f"{ROOT}.training", path=[f"{base}/training"])
    losses_pkg = _standin(f"{ROOT}.training.losses", path=[f"{base}/training/losses"])
    losses = importlib.import_module(f"{ROOT}.training.losses.losses")
    for name in dir(losses):
        if not name.startswith("_"):
            setattr(losses_pkg, name, getattr(losses, name))
    for name in ("MelSpectrogramLoss", "HubertLoss", "PESQMetric"):
        setattr(losses_pkg, name, _unused(name))
    losses_pkg.auraloss = importlib.import_module(f"{ROOT}.training.losses.auraloss")
    return importlib.import_module(f"{ROOT}.training.autoencoders")


def run_step(wrapper, reals, noise):
    """One ``training_step`` on ``reals`` with the VAE's ``randn_like`` returning ``noise``."""
    torch = sys.modules["torch"]
    if wrapper.harness_optimizers is None:
        configured = wrapper.configure_optimizers()
        if isinstance(configured, tuple):
            wrapper.harness_optimizers, wrapper.harness_schedulers = configured
        else:
            wrapper.harness_optimizers = configured
        if len(wrapper.harness_optimizers) == 1:
            wrapper.harness_optimizers = wrapper.harness_optimizers[0]
            if wrapper.harness_schedulers is not None:
                wrapper.harness_schedulers = wrapper.harness_schedulers[0]
    real_randn_like = torch.randn_like

    def given_noise(t, *args, **kwargs):
        assert tuple(t.shape) == tuple(noise.shape), f"noise {tuple(noise.shape)} for latents {tuple(t.shape)}"
        return noise.to(t.dtype)
    torch.randn_like = given_noise
    try:
        wrapper.training_step((reals, None), wrapper.harness_step)
    finally:
        torch.randn_like = real_randn_like
    wrapper.harness_step += 1
