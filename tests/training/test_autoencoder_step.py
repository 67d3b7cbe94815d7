"""audiograd's autoencoder training step against stable-audio-tools' ``AutoencoderTrainingWrapper``.

Both sides start from the same weights (the reference's, seeded) and see the same batches and
the same VAE noise; the reference runs its own ``training_step`` (see
``sat_training_reference``). After each step every parameter of the autoencoder and of the
discriminator must agree: in float64 to 1e-9 of each tensor's largest value. The small Oobleck
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
    return wrapper


def _ours(ref_wrapper, options):
    ae = OobleckVAE(AE_CONFIG).to(ag.float64)
    ae.load_state_dict({k: v.detach().numpy() for k, v in ref_wrapper.autoencoder.state_dict().items()})
    ours = AutoencoderTrainingWrapper(ae, sample_rate=44100, loss_config=copy.deepcopy(LOSS_CONFIG),
                                      optimizer_configs=copy.deepcopy(OPTIMIZERS), **options)
    ours.discriminator is not None and ours.discriminator.load_state_dict({k: v.detach().numpy() for k, v in ref_wrapper.discriminator.state_dict().items()})
    return ours


def _compare(step, ref_module, our_module, what):
    want = {k: v.detach().numpy() for k, v in ref_module.state_dict().items()}
    got = our_module.state_dict()
    assert sorted(want) == sorted(got)
    for k, w in want.items():
        scale = np.abs(w).max()
        err = np.abs(got[k].numpy() - w).max() / (scale if scale else 1.0)
        assert err < 1e-9, f"after step {step}: {what} {k} off by {err:.2e} relative"


@pytest.mark.xfail(strict=True, reason="open defect: after the first generator step the autoencoder's "
                   "gradients differ from the original's by up to 2e-3 of the largest update (the MR-STFT "
                   "terms; the L1 and KL terms agree to 1e-8)")
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
        ours.training_step(ag.tensor(reals), noise=ag.tensor(noise))
        _compare(step, ref.autoencoder, ours.autoencoder, "autoencoder")
        _compare(step, ref.discriminator, ours.discriminator, "discriminator")
    lr_ref = [ref.harness_optimizers[i].param_groups[0]["lr"] for i in range(2)]
    assert [ours.opt_gen.param_groups[0]["lr"], ours.opt_disc.param_groups[0]["lr"]] == lr_ref
