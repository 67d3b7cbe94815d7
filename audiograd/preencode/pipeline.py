"""Pre-encoding as a Ray Data pipeline: list the files, prepare each in a CPU task, encode in a
pool of actors that load the model once (a GPU each where the cluster has GPUs), write each item
where it is encoded, and gather the outcomes on the driver for the progress bar and the report.

The same stages also run as a plain loop in one process (``use_ray=False``), the baseline
against which ``bench/pre_encode.py`` measures what Ray costs.
"""
from __future__ import annotations

import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, Iterator, List

from .listing import AUDIO_EXTENSIONS, list_audio
from .settings import PreEncodeError, PreEncodeSettings
from .store import claim_output, remove_stale_temporaries, write_report
from .worker import DONE, SKIPPED, ItemEncoder, prepare_row

# CPU share of one decoding task; encoder actors on CPU-only clusters leave it free
_DECODE_CPUS = 0.5


@dataclass
class PreEncodeSummary:
    """What a run did: items written, found complete, failed; hours of audio encoded; speed."""
    done: int = 0
    skipped: int = 0
    failed: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    per_worker: Dict[str, int] = field(default_factory=dict)
    failures: List[dict] = field(default_factory=list)
    warnings: List[dict] = field(default_factory=list)
    report: str = ""

    @property
    def audio_hours(self) -> float:
        return self.audio_seconds / 3600

    @property
    def hours_per_minute(self) -> float:
        """Hours of audio encoded per minute of wall time."""
        return self.audio_hours / (self.wall_seconds / 60) if self.wall_seconds > 0 else 0.0

    def line(self) -> str:
        """The summary as one line of text."""
        return (f"{self.done} done, {self.skipped} skipped (already complete), {self.failed} failed; "
                f"{self.audio_hours:.3f} h of audio in {self.wall_seconds:.1f} s "
                f"({self.hours_per_minute:.3f} h/min) on {len(self.per_worker)} worker(s)")

    def as_dict(self) -> dict:
        return {"done": self.done, "skipped": self.skipped, "failed": self.failed,
                "audio_hours": self.audio_hours, "wall_seconds": self.wall_seconds,
                "hours_per_minute": self.hours_per_minute, "per_worker": self.per_worker}


def pre_encode(input, output, checkpoint=None, config=None, *, progress: bool = True, use_ray: bool = True,
               **options) -> PreEncodeSummary:
    """Encode every audio file under ``input`` to latents in ``output`` (stable-audio-tools'
    pre-encoded layout), resuming a run that stopped; returns the summary, also written to
    ``output/report.json`` with each failed file's error.

    ``options`` are the other fields of :class:`PreEncodeSettings` (sample_size, chunked,
    batch_size, workers, gpus_per_worker, address, ...). Raises PreEncodeError if the run
    cannot start; files that fail are reported, not raised.
    """
    settings = PreEncodeSettings(input=input, output=output, checkpoint=checkpoint, config=config, **options)
    settings.check()
    geometry = _geometry(settings)
    try:
        files = list_audio(settings.input)
    except (FileNotFoundError, OSError) as e:
        raise PreEncodeError(str(e)) from None
    if not files:
        raise PreEncodeError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) found in {settings.input}")
    claim_output(settings.output, {"model_config": None if settings.config is None else str(settings.config),
                                   "dataset_config": settings.input, "sample_size": settings.sample_size,
                                   "settings": settings.fingerprint(), "args": settings.as_dict()})
    remove_stale_temporaries(settings.output)
    summary = PreEncodeSummary()
    start = time.time()
    outcomes = _ray_outcomes(settings, files, geometry) if use_ray else _loop_outcomes(settings, files, geometry)
    bar = _progress_bar(len(files), progress)
    try:
        for row in outcomes:
            _tally(summary, row)
            bar.update(1)
            bar.set_postfix_str(f"{summary.audio_hours:.3f} h audio, {summary.failed} failed", refresh=False)
    finally:
        bar.close()
        summary.wall_seconds = time.time() - start
        summary.report = str(write_report(settings.output, summary.as_dict(), summary.failures,
                                               summary.warnings))
    return summary


def _geometry(settings: PreEncodeSettings) -> tuple:
    from ..models.oobleck import vae_geometry
    try:
        geometry = vae_geometry(settings.config)
    except (OSError, ValueError, KeyError) as e:
        raise PreEncodeError(f"config {settings.config}: {e}") from None
    ratio = geometry[3]
    if not settings.chunked and settings.sample_size < ratio:
        raise PreEncodeError(f"--sample-size {settings.sample_size} is shorter than one latent ({ratio} samples)")
    return geometry


def _tally(summary: PreEncodeSummary, row: dict) -> None:
    status = row["status"]
    if status == DONE:
        summary.done += 1
        summary.audio_seconds += float(row["seconds"])
        summary.per_worker[row["worker"]] = summary.per_worker.get(row["worker"], 0) + 1
    elif status == SKIPPED:
        summary.skipped += 1
    else:
        summary.failed += 1
        summary.failures.append({"path": row["path"], "error": row["error"]})
    if row.get("warning"):
        summary.warnings.append({"path": row["path"], "warning": row["warning"]})


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, desc="pre-encode", unit="file", file=sys.stderr, disable=not enabled,
                dynamic_ncols=True, mininterval=1.0)


def _loop_outcomes(settings: PreEncodeSettings, files, geometry) -> Iterator[dict]:
    """Every stage in this process, one item (or batch) after another."""
    encoder = ItemEncoder(settings, on_gpu=settings.gpus_per_worker > 0)
    size = settings.encoder_batch
    for first in range(0, len(files), size):
        rows = [prepare_row({"path": p, "relpath": r}, settings, geometry) for p, r in files[first:first + size]]
        yield from _rows(encoder({k: [row[k] for row in rows] for k in rows[0]}))


def _rows(batch: dict) -> Iterator[dict]:
    keys = list(batch)
    for values in zip(*(batch[k] for k in keys)):
        yield {k: (v.item() if hasattr(v, "item") else v) for k, v in zip(keys, values)}


def _ray_outcomes(settings: PreEncodeSettings, files, geometry) -> Iterator[dict]:
    """The Ray Data pipeline; starts a local Ray (or joins ``settings.address``) and stops what it started."""
    if settings.address is None and "ray" not in sys.modules:
        # a Ray started here serves this process alone: its servers listen on loopback only
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        # and its workers do this job's work: Ray would start them at nice 15, behind the
        # driver and anything else on the machine
        os.environ.setdefault("RAY_worker_niceness", "0")
    try:
        import ray
    except ImportError:
        raise PreEncodeError("pre-encoding runs on Ray, which is not installed: pip install 'audiograd[ray]'") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=settings.address, logging_level=logging.ERROR, include_dashboard=False)
    try:
        _quiet_ray_data(ray)
        workers, cpus, gpus = _worker_resources(settings, ray.cluster_resources())
        size = settings.encoder_batch
        # one decoding task per encoder batch: a task per file costs more to schedule than to run
        ds = ray.data.from_items([{"path": p, "relpath": r} for p, r in files],
                                 override_num_blocks=math.ceil(len(files) / size))
        ds = ds.map(prepare_row, fn_kwargs={"settings": settings, "geometry": geometry}, num_cpus=_DECODE_CPUS)
        ds = ds.map_batches(_bound_encoder(settings, gpus > 0, max(1, round(cpus))),
                            batch_size=size, batch_format="numpy",
                            compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=cpus, num_gpus=gpus)
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            yield from _rows(batch)
    finally:
        if started:
            ray.shutdown()


def _bound_encoder(settings: PreEncodeSettings, on_gpu: bool, threads: int) -> type:
    """An ItemEncoder class with its arguments built in: Ray ships the class with the task, so
    restarting an actor does not depend on constructor arguments kept in the object store."""
    def __init__(self):
        ItemEncoder.__init__(self, settings, on_gpu=on_gpu, threads=threads)
    return type("ItemEncoder", (ItemEncoder,), {"__init__": __init__})


def _quiet_ray_data(ray) -> None:
    """Our progress bar replaces Ray Data's per-operator bars and its start-up messages."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def _worker_resources(settings: PreEncodeSettings, resources: dict):
    """``(workers, cpus each, gpus each)``: one worker per GPU (or per ``gpus_per_worker``) where the
    cluster has GPUs, else one; CPU workers share the CPUs that decoding leaves them."""
    cluster_gpus, cluster_cpus = resources.get("GPU", 0), resources.get("CPU", 1)
    gpus = settings.gpus_per_worker or (1.0 if cluster_gpus else 0.0)
    if gpus > cluster_gpus:
        raise PreEncodeError(f"--gpus-per-worker {gpus:g}: the Ray cluster has {cluster_gpus:g} GPU(s)")
    workers = settings.workers or (max(1, int(cluster_gpus // gpus)) if gpus else 1)
    if settings.cpus_per_worker is not None:
        cpus = settings.cpus_per_worker
    elif gpus:
        cpus = 1.0
    else:
        cpus = max(_DECODE_CPUS, math.floor((cluster_cpus - _DECODE_CPUS) / workers * 100) / 100)
    if workers * cpus + _DECODE_CPUS > cluster_cpus + 1e-9:
        raise PreEncodeError(f"{workers} worker(s) of {cpus:g} CPUs and the decoding tasks need more than the "
                             f"cluster's {cluster_cpus:g} CPUs")
    return workers, cpus, gpus
