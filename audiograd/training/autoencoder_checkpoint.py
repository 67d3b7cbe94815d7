"""The whole state of an autoencoder training run in one safetensors file, so that a resumed run
continues bit for bit: autoencoder, discriminator, EMA shadows, both optimizers, both schedulers,
the step counters, the VAE's random generator, the (decaying) loss weights and the loss history.

Arrays are stored under ``autoencoder.``, ``discriminator.``, ``ema.``, ``opt_gen.<i>.``,
``opt_disc.<i>.`` and ``history.<loss>``; everything else is JSON in the file's metadata. The
file is written atomically (the previous checkpoint stays intact if writing fails) and read
through the validating safetensors reader; every inconsistency is a ValueError naming the file.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List

import numpy as np

from ..audio.output import atomic_output
from ..models.checkpoint import load_state
from .checkpoint import join_optimizer, split_optimizer

FORMAT = "audiograd autoencoder run 1"
_SCHEDULER_FIELDS = (int, float, list, type(None))


def _arrays(prefix: str, state) -> Dict[str, np.ndarray]:
    return {f"{prefix}.{k}": v.numpy() if hasattr(v, "numpy") else v for k, v in state.items()}


def save_run(path, wrapper, history: Dict[str, List[float]], extra: dict = None) -> None:
    """Write ``wrapper`` (an ``AutoencoderTrainingWrapper``) and the loss ``history`` to ``path``."""
    from safetensors.numpy import save_file
    tensors = _arrays("autoencoder", wrapper.autoencoder.state_dict())
    meta = {"format": FORMAT, "global_step": wrapper.global_step, "skipped_steps": wrapper.skipped_steps,
            "rng": wrapper.rng.bit_generator.state, "extra": extra or {},
            "term_weights": [float(t.weight) for t in wrapper.gen_terms]}
    arrays, meta["opt_gen"] = split_optimizer(wrapper.opt_gen.state_dict(), "opt_gen")
    tensors.update(arrays)
    if wrapper.discriminator is not None:
        tensors.update(_arrays("discriminator", wrapper.discriminator.state_dict()))
        arrays, meta["opt_disc"] = split_optimizer(wrapper.opt_disc.state_dict(), "opt_disc")
        tensors.update(arrays)
    for name in ("sched_gen", "sched_disc"):
        sched = getattr(wrapper, name)
        if sched is not None:
            meta[name] = sched.state_dict()
    if wrapper.ema is not None:
        ema = wrapper.ema.state_dict()
        tensors.update(_arrays("ema", ema["shadow"]))
        meta["ema"] = {"step": ema["step"], "initted": ema["initted"]}
    tensors.update({f"history.{k}": np.asarray(v, np.float64) for k, v in history.items()})
    meta["history"] = list(history)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp),
                  metadata={"audiograd_run": json.dumps(meta)})


def _section(tensors: Dict[str, np.ndarray], prefix: str) -> Dict[str, np.ndarray]:
    return {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def _check(condition: bool, path, message: str) -> None:
    if not condition:
        raise ValueError(f"{path}: {message}")


def _load_scheduler(path, sched, saved) -> None:
    current = sched.state_dict()
    _check(isinstance(saved, dict) and set(saved) == set(current), path,
           f"scheduler state has keys {sorted(saved) if isinstance(saved, dict) else saved!r}, "
           f"expected {sorted(current)}")
    for k, v in saved.items():
        _check(isinstance(v, _SCHEDULER_FIELDS) and type(v) is type(current[k]) or
               isinstance(v, (int, float)) and isinstance(current[k], (int, float)), path,
               f"scheduler field {k!r} has the wrong type ({type(v).__name__})")
    sched.load_state_dict(saved)


def load_run(path, wrapper) -> Dict[str, List[float]]:
    """Restore ``wrapper`` from a file written by :func:`save_run`; returns the loss history.
    The wrapper must be built from the same configuration (strict keys and shapes)."""
    from ..models.safetensors_file import safetensors_metadata
    # validates the whole file first, naming it in any error; the loss history holds NaN where a
    # step had no such term (and weights may be non-finite in a run that ignores such losses)
    tensors = load_state(path, allow_nonfinite=True)
    text = safetensors_metadata(Path(path)).get("audiograd_run")
    try:
        meta = json.loads(text) if text else None
    except ValueError as e:
        raise ValueError(f"{path}: run metadata is not valid JSON ({e})") from None
    _check(isinstance(meta, dict) and meta.get("format") == FORMAT, path,
           "not an audiograd autoencoder training checkpoint")
    try:
        wrapper.autoencoder.load_state_dict(_section(tensors, "autoencoder"))
        wrapper.opt_gen.load_state_dict(join_optimizer(tensors, meta["opt_gen"], "opt_gen"))
        _check((wrapper.discriminator is None) == ("opt_disc" not in meta), path,
               "the checkpoint and the configuration disagree on whether a discriminator is trained")
        if wrapper.discriminator is not None:
            wrapper.discriminator.load_state_dict(_section(tensors, "discriminator"))
            wrapper.opt_disc.load_state_dict(join_optimizer(tensors, meta["opt_disc"], "opt_disc"))
        for name in ("sched_gen", "sched_disc"):
            sched = getattr(wrapper, name)
            _check((sched is None) == (name not in meta), path, f"the configuration and the checkpoint disagree on {name}")
            if sched is not None:
                _load_scheduler(path, sched, meta[name])
        _check((wrapper.ema is None) == ("ema" not in meta), path, "the configuration and the checkpoint disagree on EMA")
        if wrapper.ema is not None:
            wrapper.ema.load_state_dict({"shadow": _section(tensors, "ema"), "step": int(meta["ema"]["step"]),
                                         "initted": bool(meta["ema"]["initted"])})
        rng = np.random.default_rng()
        rng.bit_generator.state = meta["rng"]
        _check(type(rng.bit_generator) is type(wrapper.rng.bit_generator), path, "random generator of another kind")
        wrapper.rng = rng
        step, skipped = meta["global_step"], meta["skipped_steps"]
        _check(isinstance(step, int) and isinstance(skipped, int) and 0 <= skipped <= step, path,
               f"bad step counters {step!r}, {skipped!r}")
        wrapper.global_step, wrapper.skipped_steps = step, skipped
        weights = meta["term_weights"]  # decaying loss weights
        _check(isinstance(weights, list) and len(weights) == len(wrapper.gen_terms)
               and all(isinstance(w, (int, float)) for w in weights), path, "loss weights do not match the configuration")
        for term, weight in zip(wrapper.gen_terms, weights):
            term.weight = np.float32(weight)
        names = meta["history"]
        _check(isinstance(names, list) and all(isinstance(n, str) and f"history.{n}" in tensors for n in names), path,
               "loss history names do not match its arrays")
        return {n: tensors[f"history.{n}"].astype(np.float64).tolist() for n in names}
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        raise ValueError(f"{path}: malformed training checkpoint ({type(e).__name__}: {e})") from None
    except ValueError as e:
        message = str(e)
        raise ValueError(message if message.startswith(str(path)) else f"{path}: {message}") from None
