"""What a pre-encoding run is asked to do, in one object, checked before any work starts."""
from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

# stable-audio-tools' pre_encode.py default: 30 s at 44.1 kHz, a multiple of 2048
DEFAULT_SAMPLE_SIZE = 1_320_960
DEFAULT_CHUNK_LATENTS = 128


class PreEncodeError(ValueError):
    """A run that cannot start: bad settings, a missing input, an output folder of another run."""


@dataclass
class PreEncodeSettings:
    """Settings of :func:`audiograd.preencode.pre_encode`.

    ``input``: a folder, one audio file, or a URI that pyarrow's filesystems read (``s3://...``,
    ``gs://...``, ``file:///...``); ``output``: a local (or shared, mounted) folder.
    ``sample_size``: samples (at the model's rate) each item is padded or cropped to, as
    stable-audio-tools' pre-encoder does; ``chunked`` encodes whole files of any length instead.
    ``batch_size``: items per encoder call (padded items only). ``chunk``/``margin``: the
    chunked encoder's window, as in ``audiograd encode``. ``sample``: latents drawn from the
    posterior (stable-audio-tools' choice) instead of its mean, seeded per item from ``seed``
    and the item's path. ``workers``: encoder actors (default: one per ``gpus_per_worker``
    GPUs where GPUs exist, else one); ``address``: a Ray cluster to join (None: a local one).
    ``precision``: GPU workers' convolutions, "fp32" exact or "tf32" on tensor cores (what
    PyTorch's cuDNN convolutions use by default); CPU workers compute in fp32.
    """
    input: str
    output: Path
    checkpoint: Optional[Path] = None
    config: Optional[Path] = None
    random_weights: bool = False
    sample_size: int = DEFAULT_SAMPLE_SIZE
    chunked: bool = False
    batch_size: int = 1
    chunk: int = DEFAULT_CHUNK_LATENTS
    margin: Optional[int] = None
    sample: bool = False
    seed: int = 0
    workers: Optional[int] = None
    gpus_per_worker: float = 0.0
    cpus_per_worker: Optional[float] = None
    address: Optional[str] = None
    precision: str = "fp32"

    def __post_init__(self) -> None:
        self.input = str(self.input)
        self.output = Path(self.output)
        for name in ("checkpoint", "config"):
            value = getattr(self, name)
            setattr(self, name, None if value is None else Path(value))

    def check(self) -> None:
        """Raise PreEncodeError naming the first setting that cannot work."""
        if self.checkpoint is not None and self.random_weights:
            raise PreEncodeError("give either a checkpoint or random weights, not both")
        if self.checkpoint is None and not self.random_weights:
            raise PreEncodeError("no weights: pass --checkpoint PATH (SAO model.safetensors or model.ckpt, or "
                                 "a VAE-only file); --random-weights runs an untrained model, for tests only")
        for name in ("checkpoint", "config"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise PreEncodeError(f"{name} not found: {path}")
        positive = {"sample_size": self.sample_size, "batch_size": self.batch_size, "chunk": self.chunk}
        for name, value in positive.items():
            if value is None or int(value) != value or value <= 0:
                raise PreEncodeError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
        if self.margin is not None and self.margin < 0:
            raise PreEncodeError(f"--margin must be >= 0, got {self.margin}")
        if self.workers is not None and self.workers <= 0:
            raise PreEncodeError(f"--workers must be a positive integer, got {self.workers}")
        if self.gpus_per_worker < 0:
            raise PreEncodeError(f"--gpus-per-worker must be >= 0, got {self.gpus_per_worker}")
        if self.precision not in ("fp32", "tf32"):
            raise PreEncodeError(f"--precision must be fp32 or tf32, got {self.precision!r}")
        if self.precision == "tf32" and not self.gpus_per_worker:
            raise PreEncodeError("--precision tf32 runs on GPU workers: give --gpus-per-worker")
        if self.cpus_per_worker is not None and self.cpus_per_worker <= 0:
            raise PreEncodeError(f"--cpus-per-worker must be > 0, got {self.cpus_per_worker}")

    @property
    def encoder_batch(self) -> int:
        """Items per encoder call: whole files (``chunked``) go one at a time."""
        return 1 if self.chunked else self.batch_size

    def item_seed(self, relpath: str) -> int:
        """The posterior-sampling seed of one item: stable across runs, different between items."""
        return (int(self.seed) << 32) | zlib.crc32(relpath.encode("utf-8", "surrogateescape"))

    def fingerprint(self) -> dict:
        """The settings that decide what an item's latents are; a folder written with other ones
        is not resumed (see :func:`audiograd.preencode.store.claim_output`)."""
        weights = "random" if self.random_weights else str(self.checkpoint.resolve())
        return {"weights": weights, "config": None if self.config is None else str(self.config.resolve()),
                "sample_size": None if self.chunked else int(self.sample_size), "chunked": self.chunked,
                "margin": self.margin, "sample": self.sample, "precision": self.precision,
                "seed": int(self.seed) if self.sample else None}

    def as_dict(self) -> dict:
        """All settings as JSON-ready values (for details.json's ``args``)."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}
