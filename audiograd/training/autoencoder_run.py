"""A whole autoencoder training run: ``audiograd train autoencoder``.

The run folder holds ``model_config.json`` (the configuration the run was started with),
``checkpoint.safetensors`` (everything a resumed run needs, see ``autoencoder_checkpoint``),
``model.safetensors`` (the exported (EMA) autoencoder, loadable by ``OobleckVAE.from_pretrained``
and stable-audio-tools) and ``demo/`` (reconstructions as WAV, real and reconstructed clip after
one another, and a PNG of the loss curves above the first clip's spectrograms).

Batches depend only on the seed and the step (see ``audiograd.data.audio_folder``) and every
other piece of state is in the checkpoint, so a resumed run continues bit for bit.
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional


from ..audio.output import atomic_output
from ..models.oobleck import OobleckVAE, pretransform_config
from .autoencoder import AutoencoderTrainingWrapper
from .autoencoder_checkpoint import load_run, save_run
from .autoencoder_demo import write_demo

CHECKPOINT, EXPORT, CONFIG = "checkpoint.safetensors", "model.safetensors", "model_config.json"
_OWN_FILES = {CONFIG, "demo"}  # what a run that stopped before its first checkpoint leaves


@dataclass
class AutoencoderRunConfig:
    """What ``audiograd train autoencoder`` is asked to do. ``config`` is an autoencoder's
    model_config.json (``model_type`` "autoencoder", with its ``training`` section); ``pretrained``
    starts from those weights (fine-tuning) instead of the seeded random ones."""
    data: Path
    out: Path
    config: Optional[Path] = None
    resume: bool = False
    device: Optional[str] = None  # None: the host
    precision: str = "fp32"
    batch_size: int = 4
    sample_size: Optional[int] = None
    max_steps: int = 1000
    checkpoint_every: int = 500
    demo_every: Optional[int] = None
    demo_items: int = 2
    pretrained: Optional[Path] = None
    seed: int = 42
    on_nonfinite: str = "skip"
    progress: bool = True


@dataclass
class RunSummary:
    """How a run ended: steps done, skipped (non-finite) steps and the demo distances."""
    out: Path
    steps: int
    skipped: int
    demo_distances: List[tuple] = field(default_factory=list)


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(Path(path).read_bytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a JSON config ({e})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: a model config is a JSON object")
    return value


def _model_config(cfg: AutoencoderRunConfig) -> dict:
    """The run's configuration: the one saved in the run folder when resuming (``cfg.config``
    must then match it), else ``cfg.config``. Nothing is written here."""
    out = Path(cfg.out)
    if cfg.resume:
        if not (out / CHECKPOINT).is_file():
            raise FileNotFoundError(f"{out}: nothing to resume (no {CHECKPOINT})")
        config = _read_json(out / CONFIG)
        if cfg.config is not None and _read_json(cfg.config) != config:
            raise ValueError(f"{cfg.config} differs from the configuration {out / CONFIG} was started with")
        return config
    if (out / CHECKPOINT).exists():
        raise FileExistsError(f"{out}: holds a training run (use --resume to continue it)")
    if out.exists() and (not out.is_dir() or set(p.name for p in out.iterdir()) - _OWN_FILES):
        raise FileExistsError(f"{out}: exists and is not an empty folder (use --resume to continue a run there)")
    if cfg.config is None:
        raise ValueError("a new run needs the autoencoder's model_config.json (--config)")
    config = _read_json(cfg.config)
    if config.get("model_type", "autoencoder") != "autoencoder":
        raise ValueError(f"{cfg.config}: model_type is {config.get('model_type')!r}; training needs an "
                         "autoencoder's config (model_type \"autoencoder\")")
    return config


def _save_config(out: Path, config: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with atomic_output(out / CONFIG) as tmp:
        tmp.write_text(json.dumps(config, indent=2))


def _check_settings(cfg: AutoencoderRunConfig) -> None:
    for name in ("batch_size", "max_steps", "checkpoint_every", "demo_items"):
        if int(getattr(cfg, name)) < 1:
            raise ValueError(f"{name.replace('_', '-')} must be at least 1, got {getattr(cfg, name)}")
    if cfg.precision not in ("fp32", "tf32"):
        raise ValueError(f"precision must be fp32 or tf32, got {cfg.precision!r}")


def build_wrapper(cfg: AutoencoderRunConfig, config: dict) -> AutoencoderTrainingWrapper:
    """The autoencoder (seeded random or ``pretrained`` weights) and its training wrapper."""
    from ..tensor.creation import manual_seed
    manual_seed(cfg.seed)
    model = OobleckVAE.from_pretrained(cfg.pretrained, config) if cfg.pretrained else OobleckVAE(config)
    if cfg.device:
        model.to(cfg.device)
    return AutoencoderTrainingWrapper.from_config(model, config, on_nonfinite=cfg.on_nonfinite, seed=cfg.seed)


def _record(history: Dict[str, List[float]], step: int, values: Dict[str, float]) -> None:
    steps = history.setdefault("step", [])
    n = len(steps)
    steps.append(float(step))
    for name in sorted((set(history) | set(values)) - {"step"}):
        if name.startswith("demo_"):
            continue
        history.setdefault(name, [math.nan] * n).append(values.get(name, math.nan))


def _postfix(values: Dict[str, float]) -> str:
    return " ".join(f"{k.replace('_loss', '')}={v:.4g}" for k, v in values.items() if k != "loss")


def train_autoencoder(cfg: AutoencoderRunConfig, log: Callable[[str], None] = print) -> RunSummary:
    """Run (or resume) a training run as ``cfg`` says; returns its summary. Checkpoints are
    written every ``checkpoint_every`` steps and at the end; an interruption loses at most the
    steps since the last one."""
    from ..config import config as ag_config
    _check_settings(cfg)
    config = _model_config(cfg)
    model_cfg = pretransform_config(config)
    previous_precision, ag_config.cuda_matmul_precision = ag_config.cuda_matmul_precision, cfg.precision
    try:
        return _train(cfg, config, model_cfg, log)
    finally:
        ag_config.cuda_matmul_precision = previous_precision


def _train(cfg: AutoencoderRunConfig, config: dict, model_cfg: dict, log: Callable[[str], None]) -> RunSummary:
    from ..data import AudioFolderDataset, BackgroundLoader
    sample_rate = int(config.get("sample_rate", model_cfg.get("sample_rate", 44100)))
    sample_size = int(cfg.sample_size or config.get("sample_size") or 65536)
    wrapper = build_wrapper(cfg, config)  # validates the training section
    demo_section = config.get("training", {}).get("demo")
    demo_every = cfg.demo_every or (demo_section.get("demo_every") if isinstance(demo_section, dict) else None)
    demo_every = demo_every or cfg.checkpoint_every
    if not isinstance(demo_every, int) or demo_every < 1:
        raise ValueError(f"demo_every must be a positive integer, got {demo_every!r}")
    out = Path(cfg.out)
    history: Dict[str, List[float]] = {}
    if cfg.resume:
        history = load_run(out / CHECKPOINT, wrapper)
        log(f"resumed {out} at step {wrapper.global_step}")
    channels = wrapper.autoencoder.encoder.in_channels
    dataset = AudioFolderDataset(cfg.data, sample_size, sample_rate, channels, seed=cfg.seed)
    demo = dataset.batch(-1, cfg.demo_items)
    if not cfg.resume:
        _save_config(out, config)
    summary = RunSummary(out, wrapper.global_step, wrapper.skipped_steps)
    summary.demo_distances = list(zip(history.get("demo_step", []), history.get("demo_mrstft", [])))

    def checkpoint():
        save_run(out / CHECKPOINT, wrapper, history, extra={"data": str(cfg.data), "seed": cfg.seed})
        wrapper.export_model(out / EXPORT)

    def run_demo(step):
        distance = write_demo(out / "demo", step, wrapper.autoencoder, demo, sample_rate, history)
        history.setdefault("demo_step", []).append(float(step))
        history.setdefault("demo_mrstft", []).append(distance)
        summary.demo_distances.append((step, distance))
        log(f"step {step}: demo reconstruction MR-STFT distance {distance:.4f}")

    if wrapper.global_step == 0:
        run_demo(0)
    from tqdm import tqdm
    bar = tqdm(total=cfg.max_steps, initial=min(wrapper.global_step, cfg.max_steps), desc="train", unit="step",
               disable=not cfg.progress, file=sys.stderr, dynamic_ncols=True)
    try:
        with BackgroundLoader(dataset, cfg.batch_size, start_step=wrapper.global_step) as loader:
            while wrapper.global_step < cfg.max_steps:
                batch = next(loader)
                values = wrapper.training_step(batch)
                _record(history, wrapper.global_step - 1, values)
                bar.update(1)
                bar.set_postfix_str(_postfix(values), refresh=False)
                step = wrapper.global_step
                if step % demo_every == 0:
                    run_demo(step)
                if step % cfg.checkpoint_every == 0 or step == cfg.max_steps:
                    checkpoint()
    finally:
        bar.close()
    summary.steps, summary.skipped = wrapper.global_step, wrapper.skipped_steps
    return summary
