"""``audiograd pre-encode IN OUT``: a dataset of audio to autoencoder latents, on Ray.

IN is a folder, a file, or a URI Ray's filesystems read (``s3://bucket/prefix``); OUT a folder
that every worker can write (local, or a shared mount on a cluster). Without ``--address`` a
local Ray is started; with it the run joins that cluster. A rerun into the same OUT skips the
items already complete; files that cannot be read or encoded are listed in OUT/report.json.
The exit status is 0 when every file ended done or skipped, 1 when some failed, 2 when the
run could not start.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .audio_commands import fail

EXIT_SOME_FAILED = 1


def add_parser(sub) -> None:
    """Add the ``pre-encode`` subcommand to ``sub``."""
    from ..preencode.settings import DEFAULT_CHUNK_LATENTS, DEFAULT_SAMPLE_SIZE
    p = sub.add_parser("pre-encode", help="encode a dataset of audio to latents (stable-audio-tools' pre-encoded "
                                          "format), on Ray",
                       description="Encode every audio file under IN to VAE latents in OUT: OUT/<file>.npy and "
                                   ".json as stable-audio-tools' pre_encode.py writes them. Resumable; runs on a "
                                   "local Ray, or on a cluster with --address.")
    p.add_argument("input", help="folder or file of audio (WAV, FLAC, MP3, OGG, Opus, AIFF), or a URI such as "
                                 "s3://bucket/prefix")
    p.add_argument("output", type=Path, help="output folder (created; a rerun resumes it)")
    p.add_argument("--checkpoint", type=Path, metavar="PATH",
                   help="VAE weights: SAO model.safetensors / model.ckpt, or a VAE-only file")
    p.add_argument("--config", type=Path, metavar="JSON",
                   help="model_config.json (or its pretransform config); default: Stable Audio Open 1.0")
    p.add_argument("--random-weights", action="store_true", help="seeded random weights (tests and benchmarks)")
    p.add_argument("--address", default=None, metavar="ADDR",
                   help="Ray cluster to join (e.g. auto or ray://host:10001); default: start a local Ray")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="encoder workers (default: one per GPU, else one)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="N",
                   help="GPUs per worker (default: 1 where the cluster has GPUs, else CPU workers)")
    p.add_argument("--cpus-per-worker", type=float, default=None, metavar="N",
                   help="CPUs per worker (default: 1 beside a GPU; on CPUs, a share of what decoding leaves)")
    p.add_argument("--sample-size", type=int, default=DEFAULT_SAMPLE_SIZE, metavar="S",
                   help=f"pad or crop each file to S samples at the model's rate (default {DEFAULT_SAMPLE_SIZE}, "
                        f"about 30 s at 44.1 kHz)")
    p.add_argument("--chunked", action="store_true",
                   help="encode each whole file (any length) in chunks instead of padding/cropping")
    p.add_argument("--batch-size", type=int, default=1, metavar="B", help="items per encoder call (default 1)")
    p.add_argument("--chunk", type=int, default=DEFAULT_CHUNK_LATENTS, metavar="LATENTS",
                   help=f"latents per encoder window (default {DEFAULT_CHUNK_LATENTS}, as 'audiograd encode')")
    p.add_argument("--sample", action="store_true",
                   help="latents sampled from the posterior (as stable-audio-tools does) instead of its mean")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample, combined with each file's path")
    p.add_argument("--precision", choices=["fp32", "tf32"], default="fp32",
                   help="GPU convolutions: fp32 exact (default) or tf32 on tensor cores (PyTorch's default for "
                        "cuDNN convolutions)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(fn=run)


def run(args) -> int:
    """Run ``pre-encode``; print the summary; exit 0 (all done), 1 (some failed) or 2 (could not start)."""
    from ..preencode import PreEncodeError, pre_encode
    from .signals import report_interrupt
    try:
        summary = pre_encode(args.input, args.output, checkpoint=args.checkpoint, config=args.config,
                             random_weights=args.random_weights, address=args.address, workers=args.workers,
                             gpus_per_worker=args.gpus_per_worker, cpus_per_worker=args.cpus_per_worker,
                             sample_size=args.sample_size, chunked=args.chunked, batch_size=args.batch_size,
                             chunk=args.chunk, sample=args.sample, seed=args.seed, precision=args.precision,
                             progress=not args.quiet)
    except (PreEncodeError, ValueError, KeyError, OSError, NotImplementedError) as e:
        return fail("pre-encode", e)
    except KeyboardInterrupt as e:
        return report_interrupt("pre-encode", e, "; items written so far are kept, a rerun resumes")
    print(f"pre-encode: {summary.line()}", file=sys.stderr)
    for item in summary.failures[:10]:
        print(f"  failed: {item['error']}", file=sys.stderr)
    if summary.failed > 10:
        print(f"  ... and {summary.failed - 10} more", file=sys.stderr)
    if summary.failed:
        print(f"  every failure is listed in {summary.report}", file=sys.stderr)
    return EXIT_SOME_FAILED if summary.failed else 0
