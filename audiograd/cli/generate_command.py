"""``audiograd generate "PROMPT" OUT.wav``: text to audio with Stable Audio Open.

Weights: ``--checkpoint`` (model.safetensors / model.ckpt) with ``--config`` (model_config.json)
and ``--t5 DIR`` (a local Hugging Face folder of t5-base), or ``--random-weights`` (with
``--config`` or a ``--preset``'s shapes) for trying the pipeline without the gated weights. The
output is checked for writability before the model loads, written atomically, and trimmed to
``--seconds``. A progress bar counts sampler steps.
"""
from __future__ import annotations

import time
from pathlib import Path

from .audio_commands import CommandError, _check_output, fail


def add_parser(sub) -> None:
    """Add the ``generate`` subcommand to ``sub``."""
    from ..models.sao_config import PRESETS
    p = sub.add_parser("generate", help="generate audio from a text prompt (Stable Audio Open)",
                       description="generate audio from a text prompt (Stable Audio Open 1.0 or Small)")
    p.add_argument("prompt", help="what the audio should sound like")
    p.add_argument("output", type=Path, help="audio file to write (.wav, .flac, .ogg)")
    p.add_argument("--checkpoint", type=Path, metavar="PATH", help="model.safetensors or model.ckpt")
    p.add_argument("--config", type=Path, metavar="JSON", help="the checkpoint's model_config.json")
    p.add_argument("--t5", type=Path, metavar="DIR", help="local folder of t5-base (config.json, weights, tokenizer)")
    p.add_argument("--random-weights", action="store_true",
                   help="random weights and a stand-in tokenizer: tries the pipeline, the audio is noise")
    p.add_argument("--preset", choices=sorted(PRESETS), default="sao-small",
                   help="model shapes for --random-weights without --config (default sao-small)")
    p.add_argument("--seconds", type=float, default=None, help="length of the result (default: the model's window)")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: 100 for SAO 1.0, 8 for Small)")
    p.add_argument("--cfg-scale", type=float, default=None, help="guidance scale (default: 7 for SAO 1.0, 1 for Small)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--sampler", default=None,
                   help="dpmpp-3m-sde (default), dpmpp-2m-sde, dpmpp-2m, euler; pingpong (default) or euler for Small")
    p.add_argument("--negative", default=None, metavar="PROMPT", help="negative prompt (used with guidance)")
    p.add_argument("--device", default=None, help="where to run: cpu (default) or cuda / cuda:N")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or notes")
    p.set_defaults(fn=run)


def _load(args):
    from ..models.sao_config import PRESETS
    from ..models.stable_audio import StableAudio
    if args.random_weights:
        if args.checkpoint is not None:
            raise CommandError("--random-weights and --checkpoint exclude each other")
        return StableAudio.random(args.config if args.config is not None else PRESETS[args.preset], seed=args.seed)
    missing = [flag for flag, value in (("--checkpoint", args.checkpoint), ("--config", args.config))
               if value is None]
    if missing:
        raise CommandError(f"{' and '.join(missing)} needed (or --random-weights to try without weights)")
    return StableAudio.from_pretrained(args.checkpoint, args.config, t5=args.t5)


def _generate(args) -> None:
    from contextlib import nullcontext
    from ..audio import write_audio
    from ..tensor.device import using_device
    _check_output(args.output, "audio")
    start = time.perf_counter()
    with using_device(args.device) if args.device else nullcontext():
        model = _load(args)
        if args.device:
            model = model.to(args.device)
        steps = args.steps if args.steps is not None else model.config.defaults["steps"]
        bar = None
        if not args.quiet:
            from tqdm import tqdm
            bar = tqdm(total=steps, desc="generate", unit="step", leave=False)
        try:
            audio = model.generate(args.prompt, seconds=args.seconds, steps=steps, cfg_scale=args.cfg_scale,
                                   seed=args.seed, sampler=args.sampler, negative_prompt=args.negative,
                                   callback=(lambda info: bar.update(1)) if bar is not None else None)
        finally:
            if bar is not None:
                bar.close()
    write_audio(args.output, audio[0], model.config.sample_rate)  # atomic
    if not args.quiet:
        seconds = audio.shape[-1] / model.config.sample_rate
        took = time.perf_counter() - start
        print(f"wrote {args.output}: {seconds:.2f} s of audio in {took:.1f} s "
              f"(real-time factor {took / seconds:.3f})")


def run(args) -> int:
    """Run ``generate``; expected errors become one line and exit status 2."""
    from .signals import report_interrupt
    try:
        _generate(args)
    except (CommandError, ValueError, KeyError, OSError, NotImplementedError, ImportError) as e:
        return fail("generate", e)
    except KeyboardInterrupt as e:
        return report_interrupt("generate", e, "; no output written")
    return 0
