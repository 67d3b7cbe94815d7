"""audiograd's autoencoder training step against stable-audio-tools' ``AutoencoderTrainingWrapper``.

Both sides start from the same weights (the reference's, seeded) and see the same batches and
the same VAE noise; the reference runs its own ``training_step`` (see
``sat_training_reference``). After each step every parameter of the autoencoder and of the
discriminator must agree in float64 (see ``_compare`` for the tolerances), and so must the EMA weights. The small Oobleck
and loss configuration keep it fast; SAO's loss recipe (perceptual sum-and-difference MR-STFT,
per-channel MR-STFT, EnCodec discriminator, AdamW with SAO's betas, ExponentialLR) is kept.
"""
import copy

import numpy as np
import pytest

import audiograd as ag
from audiograd.models.oobleck import OobleckVAE
from audiograd.training.autoencoder import AutoencoderTrainingWrapper

from models import sat_reference as sr
from training.sat_training_reference import reference, run_step

REF = reference()
torch = sr.load_reference().torch

AE_CONFIG = sr.config("snake_odd")  # stride 15, stereo, 3 latent channels
SCALES = [256, 128, 64]
LOSS_CONFIG = {
    "discriminator": {"type": "encodec",
                      "config": {"filters": 4, "n_ffts": [128, 64], "hop_lengths": [32, 16], "win_lengths": [128, 64]},
                      "weights": {"adversarial": 0.1, "feature_matching": 5.0}},
    "spectral": {"type": "mrstft",
                 "config": {"fft_sizes": SCALES, "hop_sizes": [s // 4 for s in SCALES], "win_lengths": SCALES,
                            "perceptual_weighting": True},
                 "weights": {"mrstft": 1.0}},
    "time": {"type": "l1", "weights": {"l1": 0.1}},
    "bottleneck": {"type": "kl", "weights": {"kl": 1e-4}},
}
OPTIMIZERS = {part: {"optimizer": {"type": "AdamW", "config": {"betas": [0.8, 0.99], "lr": 1e-3}},
                     "scheduler": {"type": "ExponentialLR", "config": {"gamma": 0.9}}}
              for part in ("autoencoder", "discriminator")}
LENGTH, BATCH = 15 * 40, 2


def audio(seed):
    rng = np.random.default_rng(seed)
    t = np.arange(LENGTH) / 44100.0
    f = rng.uniform(100, 5000, size=(BATCH, 2, 3, 1))
    return (0.2 * np.sin(2 * np.pi * f * t)).sum(2) + 0.01 * rng.standard_normal((BATCH, 2, LENGTH))


def _reference_autoencoder():
    ref = sr.load_reference()
    enc = ref.OobleckEncoder(**AE_CONFIG["encoder"]["config"])
    dec = ref.OobleckDecoder(**AE_CONFIG["decoder"]["config"])
    return REF.AudioAutoencoder(enc, dec, latent_dim=AE_CONFIG["latent_dim"], downsampling_ratio=15,
                                sample_rate=44100, io_channels=2, bottleneck=ref.VAEBottleneck())


def _reference_wrapper(options):
    torch.manual_seed(0)
    ae = _reference_autoencoder()
    ema_copy = None
    if options.get("use_ema"):  # as the original's factory does: weight norm cannot be deep-copied
        ema_copy = _reference_autoencoder()
        ema_copy.load_state_dict(ae.state_dict())
    wrapper = REF.AutoencoderTrainingWrapper(ae, sample_rate=44100, loss_config=copy.deepcopy(LOSS_CONFIG),
                                             optimizer_configs=copy.deepcopy(OPTIMIZERS), ema_copy=ema_copy,
                                             **options)
    wrapper.double()
    if wrapper.autoencoder_ema is not None:  # EMA(...) copied the float32 model before .double()
        wrapper.autoencoder_ema.ema_model.double()
    _exact_stft_windows(wrapper)
    return wrapper


def _exact_stft_windows(wrapper):
    """The original's STFT losses keep their Hann window as a plain float32 attribute, which
    ``.double()`` does not reach; a float64 run needs the exact window (ours computes it in float64)."""
    for module in wrapper.modules():
        window = module.__dict__.get("window")
        if isinstance(window, torch.Tensor):
            exact = torch.hann_window(window.numel(), dtype=torch.float64)
            assert torch.allclose(window.double(), exact, rtol=0, atol=1e-6), f"expected a Hann window in {type(module).__name__}: {window.dtype} {window.numel()}"
            module.window = exact


def _ours(ref_wrapper, options):
    ae = OobleckVAE(AE_CONFIG).to(ag.float64)
    ae.load_state_dict({k: v.detach().numpy() for k, v in ref_wrapper.autoencoder.state_dict().items()})
    ours = AutoencoderTrainingWrapper(ae, sample_rate=44100, loss_config=copy.deepcopy(LOSS_CONFIG),
                                      optimizer_configs=copy.deepcopy(OPTIMIZERS), **options)
    ours.discriminator is not None and ours.discriminator.load_state_dict({k: v.detach().numpy() for k, v in ref_wrapper.discriminator.state_dict().items()})
    return ours


class _Weights:
    """A state dict seen as a module without gradients."""

    def __init__(self, state):
        self.state = state

    def named_parameters(self):
        return iter(())

    def state_dict(self):
        return self.state


def _compare(step, ref_module, our_module, what, stepped=True):
    """Gradients within 1e-9 of the module's largest gradient: the float64 math. Weights within
    1e-7 of each tensor's largest value: Adam divides by sqrt(v) + 1e-8, so on snake parameters
    whose gradients are ~1e-6 a 1e-10 gradient difference becomes a ~1e-8 weight difference.
    That amplification only shows once Adam has history: after the first generator step and the
    first discriminator step weights must agree within 1e-9 too.
    Gradients are compared only for the module the step updated (the others' are stale)."""
    ref_grads = {n: p.grad.numpy() for n, p in ref_module.named_parameters() if p.grad is not None}
    our_grads = {n: p.grad.numpy() for n, p in our_module.named_parameters() if p.grad is not None}
    if stepped and ref_grads:
        scale = max(np.abs(g).max() for g in ref_grads.values())
        for n, g in ref_grads.items():
            assert n in our_grads, f"after step {step}: {what} {n} has no gradient"
            err = np.abs(our_grads[n] - g).max() / scale
            assert err < 1e-9, f"after step {step}: {what} gradient of {n} off by {err:.2e} of the largest"
    want = {k: v.detach().numpy() for k, v in ref_module.state_dict().items()}
    got = our_module.state_dict()
    assert sorted(want) == sorted(got)
    for k, w in want.items():
        scale = np.abs(w).max()
        err = np.abs(got[k].numpy() - w).max() / (scale if scale else 1.0)
        assert err < (1e-9 if step in (0, 1) else 1e-7), f"after step {step}: {what} {k} off by {err:.2e} relative"


@pytest.mark.parametrize("options", [
    dict(use_ema=True),
    dict(use_ema=False, warmup_steps=2, warmup_mode="adv", clip_grad_norm=0.5),
    dict(use_ema=False, warmup_steps=1, warmup_mode="full", encoder_freeze_on_warmup=True),
], ids=["sao", "adv-warmup-clipped", "full-warmup-frozen-encoder"])
def test_steps_match_reference(options):
    ref = _reference_wrapper(options)
    ours = _ours(ref, options)
    rng = np.random.default_rng(1)
    for step in range(4):
        reals = audio(10 + step)
        noise = rng.standard_normal((BATCH, AE_CONFIG["latent_dim"], LENGTH // 15))
        run_step(ref, torch.tensor(reals), torch.tensor(noise))
        disc_step = ours.is_discriminator_step()
        ours.training_step(ag.tensor(reals), noise=ag.tensor(noise))
        _compare(step, ref.autoencoder, ours.autoencoder, "autoencoder", stepped=not disc_step)
        _compare(step, ref.discriminator, ours.discriminator, "discriminator", stepped=disc_step)
    if options["use_ema"]:
        _compare("all", ref.autoencoder_ema.ema_model, _Weights(ours.ema_state()), "EMA")
    lr_ref = [ref.harness_optimizers[i].param_groups[0]["lr"] for i in range(2)]
    assert [ours.opt_gen.param_groups[0]["lr"], ours.opt_disc.param_groups[0]["lr"]] == lr_ref
