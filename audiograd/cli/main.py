"""``audiograd`` command: ``demo`` runs a bundled example, ``cache info|clear`` manages kernels,
``parity`` checks the Oobleck model, ``encode|decode|reconstruct`` run it on audio files,
``generate`` makes audio from text, ``pre-encode`` encodes datasets, ``train`` trains models."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..devices.errors import CompileError, CompilerNotFoundError
from ..devices.disk_cache import CacheError, DiskCache


EXIT_ERROR = 2


def _cmd_cache(args) -> int:
    from ..config import config
    cache = DiskCache(config.cache_dir)
    if args.action == "info":
        info = cache.info()
        print(f"cache:   {info['path']}")
        print(f"kernels: {info['kernels']}")
        print(f"size:    {info['bytes'] / 1e6:.1f} MB")
        if not info["marked"] and Path(info["path"]).is_dir():
            print("note:    this folder is not marked as audiograd's kernel cache; 'cache clear' will not delete in it")
    else:
        print(f"removed {cache.clear()} kernels from {cache.root}")
    return 0


def _one_line(error: BaseException) -> str:
    """The error as one line: a compile error's summary, any other message with newlines folded."""
    text = error.summary if isinstance(error, CompileError) else str(error)
    return " ".join(text.split()) or type(error).__name__


def _cmd_demo(args) -> int:
    if args.name == "sine":
        if args.note or args.wav or args.out:
            print("audiograd demo: error: --note, --wav and --out belong to the piano demo", file=sys.stderr)
            return 2
        from ..examples import fit_sine
        loss = fit_sine.run(steps=300 if args.steps is None else args.steps)
        print(f"final loss {loss:.6f}")
        return 0
    from ..examples import piano
    cfg = piano.PianoConfig(wav=args.wav, out=args.out, seed=args.seed)
    if args.note is not None or args.wav is not None:
        cfg.note = args.note               # with --wav alone the pitch is estimated from the file
    if args.steps is not None:
        cfg.steps = args.steps
    try:
        piano.run(cfg)
    except (piano.DemoError, OSError) as e:
        print(f"audiograd demo: error: {e}", file=sys.stderr)
        return 2
    return 0


def _add_demo_parser(sub) -> None:
    p = sub.add_parser("demo", help="train a small MLP to imitate a piano note (or, with 'sine', a sine wave)",
                       description="piano (default): an MLP drives a sinusoid + noise synthesizer trained with "
                                   "a multi-resolution STFT loss to imitate a piano note; writes target.wav, "
                                   "result.wav and spectrogram.png. sine: a tiny MLP fits one period of a sine.")
    p.add_argument("name", nargs="?", choices=["piano", "sine"], default="piano", help="which demo (default: piano)")
    p.add_argument("--note", metavar="NAME_OR_MIDI",
                   help="note to imitate: C3, C4 (default), A4 are bundled; others are rendered with "
                        "fluidsynth if it is installed. With --wav: the file's pitch")
    p.add_argument("--wav", metavar="PATH", help="imitate this WAV/FLAC file instead (mono-mixed, resampled, "
                                                  "trimmed to 2 s from its onset)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default 300)")
    p.add_argument("--out", metavar="DIR",
                   help="output folder, new or empty (default: a new piano-<note>-<time> folder in the current "
                        "directory, or in ~/audiograd-demos when the current directory is inside a git checkout; "
                        "the demo prints where)")
    p.add_argument("--seed", type=int, default=0, help="seeds the weights and the noise (default 0)")
    p.set_defaults(fn=_cmd_demo)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="audiograd", description="audiograd command line")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("cache", help="inspect or clear the compiled-kernel cache")
    p.add_argument("action", choices=["info", "clear"])
    p.set_defaults(fn=_cmd_cache)
    _add_demo_parser(sub)
    p = sub.add_parser("parity", help="compare the Oobleck model with stable-audio-tools, layer by layer")
    from .parity import add_arguments, cmd_parity
    add_arguments(p)
    p.set_defaults(fn=cmd_parity)
    from .audio_commands import add_parsers as add_audio_parsers
    add_audio_parsers(sub)
    from .generate_command import add_parser as add_generate_parser
    add_generate_parser(sub)
    from .pre_encode_command import add_parser as add_pre_encode_parser
    add_pre_encode_parser(sub)
    from .train_command import add_parser as add_train_parser
    add_train_parser(sub)
    args = parser.parse_args(argv)
    from .signals import report_interrupt, signals_as_exceptions
    try:
        with signals_as_exceptions():   # SIGTERM unwinds clean-ups as SIGINT does
            return args.fn(args)
    except KeyboardInterrupt as e:
        return report_interrupt(args.command, e)
    except (CompilerNotFoundError, CompileError, CacheError) as e:
        # the same problem for every command: no working compiler, or no usable kernel cache
        print(f"audiograd {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
