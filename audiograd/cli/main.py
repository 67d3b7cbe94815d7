"""``audiograd`` command: ``demo`` runs a bundled example, ``cache info|clear`` manages kernels,
``parity`` checks the Oobleck model, ``encode|decode|reconstruct`` run it on audio files."""
from __future__ import annotations

import argparse
import sys


def _cmd_cache(args) -> int:
    from ..config import config
    from ..runtime.disk_cache import DiskCache
    cache = DiskCache(config.cache_dir)
    if args.action == "info":
        info = cache.info()
        print(f"cache:   {info['path']}")
        print(f"kernels: {info['kernels']}")
        print(f"size:    {info['bytes'] / 1e6:.1f} MB")
    else:
        print(f"removed {cache.clear()} kernels from {cache.root}")
    return 0


def _cmd_demo(args) -> int:
    from ..examples import fit_sine
    loss = fit_sine.run(steps=args.steps)
    print(f"final loss {loss:.6f}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="audiograd", description="audiograd command line")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("cache", help="inspect or clear the compiled-kernel cache")
    p.add_argument("action", choices=["info", "clear"])
    p.set_defaults(fn=_cmd_cache)
    p = sub.add_parser("demo", help="train a small MLP on a sine wave and print its loss")
    p.add_argument("--steps", type=int, default=300)
    p.set_defaults(fn=_cmd_demo)
    p = sub.add_parser("parity", help="compare the Oobleck model with stable-audio-tools, layer by layer")
    from .parity import add_arguments, cmd_parity
    add_arguments(p)
    p.set_defaults(fn=cmd_parity)
    from .audio_commands import add_parsers as add_audio_parsers
    add_audio_parsers(sub)
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
