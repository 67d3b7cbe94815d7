"""``audiograd encode|decode|reconstruct``: run the Oobleck VAE on audio files, in chunks.

- ``encode IN.wav OUT.npy``: latents saved as float32 (latent_dim, frames);
- ``decode IN.npy OUT.wav``: audio at the model's sample rate (32-bit float WAV by default);
- ``reconstruct IN.wav OUT.wav``: encode then decode, written at the model's rate and channels.

Input audio at another sample rate is resampled with soxr, and mono/stereo is converted to the
model's channel count (a note says so on stderr). Everything that can be checked is checked
before the model is loaded: the input's header (sample rate, channels), that the output can be
written (see :mod:`audiograd.audio.output`: regular files only, a temporary file must be
creatable next to it) and that its extension is known. Outputs are written atomically.
Expected failures (missing, unreadable, non-finite or empty audio, checkpoints that do not fit
the config, latents of the wrong shape, unwritable outputs) print one line and exit with
status 2; SIGINT / SIGTERM print one line and exit with 130 / 143, leaving no temporary file
and any existing output untouched. The progress bar counts encoder/decoder blocks.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

EXIT_ERROR = 2
_MAX_MESSAGE = 400


class CommandError(Exception):
    """An expected failure: its message is printed on one line and the command exits with 2."""


def add_parsers(sub) -> None:
    """Add the ``encode``, ``decode`` and ``reconstruct`` subcommands to ``sub``."""
    specs = [("encode", "encode audio to VAE latents (.npy)", "audio file (WAV/FLAC/OGG)", "latents .npy"),
             ("decode", "decode VAE latents (.npy) to audio", "latents .npy (latent_dim, frames)", "audio file"),
             ("reconstruct", "encode and decode audio (hear what the VAE keeps)", "audio file", "audio file")]
    for name, help_text, in_help, out_help in specs:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("input", type=Path, help=in_help)
        p.add_argument("output", type=Path, help=out_help)
        _add_model_arguments(p, sampling=name != "decode")
        p.set_defaults(fn=lambda args, _name=name: run_command(_name, args))


def _add_model_arguments(p, sampling: bool) -> None:
    p.add_argument("--checkpoint", type=Path, metavar="PATH",
                   help="VAE weights: SAO model.safetensors / model.ckpt, or a VAE-only safetensors file")
    p.add_argument("--config", type=Path, metavar="JSON",
                   help="model_config.json (or its pretransform config); default: Stable Audio Open 1.0")
    p.add_argument("--random-weights", action="store_true",
                   help="use seeded random weights instead of a checkpoint (tests and benchmarks only)")
    p.add_argument("--chunk", type=int, default=128, metavar="LATENTS",
                   help="latents per chunk (the encoder reads LATENTS * downsampling_ratio samples); default 128")
    p.add_argument("--margin", type=int, default=None, metavar="LATENTS",
                   help="context per chunk side, in latents; default: the model's receptive field (exact)")
    if sampling:
        p.add_argument("--sample", action="store_true",
                       help="use a latent sampled from the posterior instead of its mean")
        p.add_argument("--seed", type=int, default=None, help="noise seed for --sample")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or notes")


def run_command(name: str, args) -> int:
    """Run one subcommand; expected errors become a one-line message and exit status 2.

    Unreadable files (AudioFileError, CheckpointError) are ValueErrors; KeyError covers configs
    without a required field; OSError covers files that cannot be opened or written. SIGINT
    and SIGTERM unwind the work (so temporary files are removed) and exit with 128 + signal.
    """
    from .signals import report_interrupt
    try:
        {"encode": _encode, "decode": _decode, "reconstruct": _reconstruct}[name](args)
    except (CommandError, ValueError, KeyError, OSError, NotImplementedError) as e:
        return fail(name, e)
    except KeyboardInterrupt as e:  # main() turns SIGTERM into one too
        return report_interrupt(name, e, "; no output written")
    return 0


def fail(name: str, error: BaseException) -> int:
    """Print ``error`` as one line, ``audiograd <name>: error: ...``; return the exit status (2)."""
    msg = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    msg = " ".join(msg.split()) or type(error).__name__
    if len(msg) > _MAX_MESSAGE:
        msg = msg[:_MAX_MESSAGE - 3] + "..."
    print(f"audiograd {name}: error: {msg}", file=sys.stderr)
    return EXIT_ERROR


def _note(args, text: str) -> None:
    if not args.quiet:
        print(f"note: {text}", file=sys.stderr)


def _check_paths(args, kind: str, audio_input: bool = True) -> None:
    """Fail before any work if the input is missing or refused by its header, or the output
    cannot be written as ``kind``."""
    from ..audio import probe_audio
    if args.chunk <= 0:
        raise CommandError(f"--chunk must be a positive number of latents, got {args.chunk}")
    if args.margin is not None and args.margin < 0:
        raise CommandError(f"--margin must be >= 0, got {args.margin}")
    if not args.input.is_file():
        if args.input.exists():
            raise CommandError(f"input {args.input} is not a regular file")
        raise CommandError(f"input not found: {args.input}")
    if audio_input:
        probe_audio(args.input)
    _check_output(args.output, kind)


def _check_output(path: Path, kind: str) -> None:
    """Fail before any work if ``path`` cannot be written as ``kind``: a known extension, and
    :func:`audiograd.audio.check_output_path` (writable directory, not a FIFO/device/...)."""
    from ..audio import check_output_path
    check_output_path(path)
    if kind == "audio":
        import soundfile as sf
        if path.suffix.lstrip(".").upper() not in sf.available_formats():
            raise CommandError(f"{path}: unknown audio file extension {path.suffix!r} (use .wav, .flac or .ogg)")
    elif path.suffix.lower() != ".npy":
        raise CommandError(f"{path}: latents are written as .npy; give the output a .npy extension")


def _load_config(path):
    """The model config at ``path`` (None: the default), read and checked before any work."""
    from ..models.oobleck import pretransform_config
    if path is None:
        return None
    if not path.is_file():
        raise CommandError(f"config not found: {path}")
    return pretransform_config(path)


def load_model(args):
    """The OobleckVAE that ``--checkpoint`` / ``--config`` / ``--random-weights`` describe."""
    from .. import manual_seed
    from ..models.checkpoint import CheckpointError
    from ..models.oobleck import OobleckVAE
    if args.checkpoint is not None and args.random_weights:
        raise CommandError("give either --checkpoint or --random-weights, not both")
    if args.checkpoint is None and not args.random_weights:
        raise CommandError("no weights: pass --checkpoint PATH (SAO model.safetensors or model.ckpt); "
                           "--random-weights runs an untrained model, for tests and benchmarks only")
    config = _load_config(args.config)
    if args.random_weights:
        manual_seed(0)
        return OobleckVAE(config)
    if not args.checkpoint.is_file():
        raise CommandError(f"checkpoint not found: {args.checkpoint}")
    try:
        return OobleckVAE.from_pretrained(args.checkpoint, config=config)
    except CheckpointError:
        raise
    except (KeyError, ValueError) as e:
        detail = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        detail = detail if len(detail) < 200 else detail[:197] + "..."
        raise CommandError(f"{args.checkpoint}: weights do not fit the model config; does --config match "
                           f"this checkpoint? ({detail})") from None


def _progress(args, desc: str):
    """A progress callback drawing a tqdm bar over encoder/decoder blocks on stderr (created
    at the first call, ``done=0``, with the total), and a closer."""
    from tqdm import tqdm
    state = {}

    def update(done: int, total: int) -> None:
        if "bar" not in state:
            state["bar"] = tqdm(total=total, desc=desc, unit="block", file=sys.stderr, disable=args.quiet,
                                dynamic_ncols=True)
        state["bar"].update(done - state["bar"].n)

    def close() -> None:
        if "bar" in state:
            state["bar"].close()
    return update, close


def _read_input(args):
    """``(audio, sample_rate)`` of the input file, read (and refused if NaN/inf or empty)
    before the model is loaded; a file cut short is reported even with --quiet, since the
    output is shorter too."""
    from ..audio import read_audio_reporting
    return read_audio_reporting(args.input, lambda line: print(line, file=sys.stderr))


def _fit_to_model(args, model, audio: np.ndarray, sr: int) -> np.ndarray:
    """``audio`` resampled and channel-converted for ``model`` (a note says so)."""
    from ..audio import match_channels, resample
    if sr != model.sample_rate:
        _note(args, f"resampling {args.input} from {sr} Hz to the model's {model.sample_rate} Hz")
        audio = resample(audio, sr, model.sample_rate)
    if audio.shape[0] != model.io_channels:
        _note(args, f"converting {args.input} from {audio.shape[0]} to {model.io_channels} channels")
        try:
            audio = match_channels(audio, model.io_channels)
        except ValueError as e:
            raise CommandError(f"{args.input}: {e}") from None
    if audio.shape[1] < model.downsampling_ratio:
        raise CommandError(f"{args.input}: {audio.shape[1]} samples is shorter than one latent "
                           f"({model.downsampling_ratio} samples at {model.sample_rate} Hz)")
    return audio


def _encode_audio(args, model, audio: np.ndarray) -> np.ndarray:
    from ..models.chunked import encode_chunked
    update, close = _progress(args, "encode")
    try:
        z = encode_chunked(model, audio[None], chunk_samples=args.chunk * model.downsampling_ratio,
                           margin=args.margin, sample=args.sample, seed=args.seed, progress=update)
    finally:
        close()
    return z[0]


def _decode_latents(args, model, latents: np.ndarray) -> np.ndarray:
    from ..models.chunked import decode_chunked
    update, close = _progress(args, "decode")
    try:
        audio = decode_chunked(model, latents[None], chunk=args.chunk, margin=args.margin, progress=update)
    finally:
        close()
    return audio[0]


def _encode(args) -> None:
    from ..audio import atomic_output
    _check_paths(args, "latents")
    audio, sr = _read_input(args)
    model = load_model(args)
    z = _encode_audio(args, model, _fit_to_model(args, model, audio, sr))
    with atomic_output(args.output) as tmp, open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(z, dtype=np.float32))
    _note(args, f"wrote {args.output}: latents {z.shape[0]} x {z.shape[1]} frames")


def _load_latents(path: Path, latent_dim: int) -> np.ndarray:
    """Latents (latent_dim, frames) from a .npy file written by 'audiograd encode', read without trusting it."""
    from ..models.npy_file import NpyFileError, read_npy
    try:
        z = read_npy(path)
    except NpyFileError as e:
        raise CommandError(str(e)) from None
    if z.ndim == 3 and z.shape[0] == 1:
        z = z[0]
    if z.ndim != 2 or z.shape[0] != latent_dim or z.shape[1] == 0:
        raise CommandError(f"{path}: latents shaped {tuple(z.shape)}, expected ({latent_dim}, frames)")
    if not np.issubdtype(z.dtype, np.floating) or not np.isfinite(z).all():
        raise CommandError(f"{path}: latents must be finite floating-point numbers (got {z.dtype})")
    return z.astype(np.float32, copy=False)


def _write_audio(args, model, audio: np.ndarray) -> None:
    from ..audio import write_audio
    write_audio(args.output, audio, model.sample_rate)
    _note(args, f"wrote {args.output}: {audio.shape[0]} channels, {audio.shape[1] / model.sample_rate:.2f} s "
                f"at {model.sample_rate} Hz")


def _decode(args) -> None:
    _check_paths(args, "audio", audio_input=False)
    model = load_model(args)
    z = _load_latents(args.input, model.latent_dim)
    _write_audio(args, model, _decode_latents(args, model, z))


def _reconstruct(args) -> None:
    _check_paths(args, "audio")
    audio, sr = _read_input(args)
    model = load_model(args)
    z = _encode_audio(args, model, _fit_to_model(args, model, audio, sr))
    _write_audio(args, model, _decode_latents(args, model, z))
