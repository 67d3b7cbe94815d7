"""``audiograd train autoencoder``: train or fine-tune an Oobleck autoencoder with
stable-audio-tools' recipe (see ``audiograd.training.autoencoder_run``)."""
from __future__ import annotations

import sys
from pathlib import Path

from .audio_commands import fail


def add_parser(sub) -> None:
    """Add the ``train`` command (its one target: ``autoencoder``) to ``sub``."""
    p = sub.add_parser("train", help="train a model (autoencoder: stable-audio-tools' GAN recipe)")
    targets = p.add_subparsers(dest="target", required=True)
    a = targets.add_parser("autoencoder", help="train or fine-tune an Oobleck VAE on a folder of audio",
                           description="Train an Oobleck autoencoder with stable-audio-tools' recipe (EnCodec "
                                       "discriminator, MR-STFT, KL, EMA) on a folder of audio. RUN receives "
                                       "checkpoint.safetensors, model.safetensors (the exported EMA autoencoder) "
                                       "and demo/ (WAV reconstructions and PNGs of losses and spectrograms).")
    a.add_argument("--config", type=Path, metavar="JSON",
                   help="the autoencoder's model_config.json (model_type autoencoder, with its training "
                        "section); with --resume, defaults to the one saved in RUN")
    a.add_argument("--data", type=Path, required=True, metavar="DIR", help="folder of audio files (searched recursively)")
    a.add_argument("--out", type=Path, required=True, metavar="RUN", help="run folder (new or empty, or one to resume)")
    a.add_argument("--resume", action="store_true", help="continue the run in RUN from its checkpoint")
    a.add_argument("--pretrained", type=Path, metavar="PATH",
                   help="start from these weights (SAO's model.safetensors or an autoencoder's own) instead of "
                        "random ones")
    a.add_argument("--device", default=None, help="where to train: cpu (default) or cuda / cuda:N")
    a.add_argument("--precision", choices=["fp32", "tf32"], default="fp32",
                   help="matrix products on cuda: fp32 (default) or tf32 tensor cores")
    a.add_argument("--batch-size", type=int, default=4, metavar="B", help="clips per step (default 4)")
    a.add_argument("--sample-size", type=int, default=None, metavar="S",
                   help="samples per clip (default: the config's sample_size)")
    a.add_argument("--max-steps", type=int, default=1000, metavar="N", help="train until step N (default 1000)")
    a.add_argument("--checkpoint-every", type=int, default=500, metavar="N", help="checkpoint every N steps")
    a.add_argument("--demo-every", type=int, default=None, metavar="N",
                   help="demo reconstructions every N steps (default: the config's, else --checkpoint-every)")
    a.add_argument("--seed", type=int, default=42, help="seeds the weights, the batches and the VAE noise")
    a.add_argument("--on-nonfinite", choices=["skip", "stop", "ignore"], default="skip",
                   help="a NaN/inf loss: skip that update (default), stop with a report, or apply it anyway")
    a.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    a.set_defaults(fn=run)


def run(args) -> int:
    """Run ``train autoencoder``; exit 0 when the run reached --max-steps, 2 when it could not run."""
    from ..audio.io import AudioFileError
    from ..training.autoencoder import NonFiniteLoss
    from ..training.autoencoder_run import AutoencoderRunConfig, train_autoencoder
    from .signals import report_interrupt
    cfg = AutoencoderRunConfig(data=args.data, out=args.out, config=args.config, resume=args.resume,
                               device=args.device, precision=args.precision, batch_size=args.batch_size,
                               sample_size=args.sample_size, max_steps=args.max_steps,
                               checkpoint_every=args.checkpoint_every, demo_every=args.demo_every,
                               pretrained=args.pretrained, seed=args.seed, on_nonfinite=args.on_nonfinite,
                               progress=not args.quiet)
    log = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr))
    try:
        summary = train_autoencoder(cfg, log=log)
    except (NonFiniteLoss, AudioFileError, ValueError, KeyError, OSError, NotImplementedError) as e:
        return fail("train", e)
    except KeyboardInterrupt as e:
        return report_interrupt("train", e, f"; the last checkpoint in {args.out} is kept, --resume continues it")
    print(f"train: {summary.steps} steps ({summary.skipped} skipped for non-finite losses); "
          f"exported {summary.out / 'model.safetensors'}", file=sys.stderr)
    return 0
