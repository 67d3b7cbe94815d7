"""The piano demo: a small MLP learns to imitate a recorded piano note with a sinusoid and noise
synthesizer, trained with Adam on ``MultiResolutionSTFTLoss`` (auraloss's defaults: FFT sizes
1024, 2048 and 512, spectral convergence plus log-magnitude distance).

Steps: load a note (a bundled clip, one rendered with fluidsynth, or the user's file), measure
the note's partials (``f0``, inharmonicity, peak frequencies, starting phases) with numpy, build a
:class:`~audiograd.examples.piano_synth.PianoSynth`, capture one training step (forward, loss,
backward, Adam update) with ``audiograd.jit`` and replay it. Writes ``target.wav``,
``result.wav`` and ``spectrogram.png`` (target above, result below) into ``out`` or a new folder
outside any git checkout (:func:`make_out_dir`).
"""
from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np

import audiograd as ag
from audiograd.audio import read_audio_reporting, resample, write_audio
from audiograd.audio.png import write_png
from audiograd.losses import MultiResolutionSTFTLoss

from . import notes, partials
from .piano_synth import PianoSynth
from ..audio.spectrogram_image import comparison_image


class DemoError(ValueError):
    """A problem with the demo's inputs or output folder; the message says what and where."""


@dataclass
class PianoConfig:
    """Settings of :func:`run`. ``note`` is a name (``C4``, ``F#3``) or MIDI number; with ``wav``
    the user's file is the target and ``note`` (if given) only supplies the pitch."""
    note: Optional[str] = "C4"
    wav: Optional[str] = None
    steps: int = 300
    lr: float = 5e-3
    lr_final: float = 0.05          # the cosine schedule ends at lr * lr_final
    seconds: float = 2.0            # target length (the bundled clips are 2 s)
    sample_rate: int = 22050
    hop: int = 128                  # samples per control frame
    hidden: int = 128
    max_partials: int = 96          # partials up to 95% of Nyquist, at most this many
    extra_sines: int = 128          # sinusoids at the strongest peaks that are not partials,
    extra_distance: float = 0.1     # at least this many f0 away from every partial
    noise_bands: int = 256
    out: Optional[str] = None       # default: a new piano-<name>-<time> folder, see make_out_dir
    seed: int = 0
    progress: bool = True


@dataclass
class PianoResult:
    """What :func:`run` did: the output folder, the losses and the time it took."""
    out_dir: Path
    name: str
    initial_loss: float
    final_loss: float
    losses: List[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ratio(self) -> float:
        """How many times smaller the final MR-STFT distance is than the initial one."""
        return self.initial_loss / self.final_loss


def load_target(cfg: PianoConfig, log: Callable[[str], None] = print):
    """``(clip, name, f0_guess)``: the target clip at ``cfg.sample_rate``, trimmed to a whole
    number of frames of at most ``cfg.seconds``; ``f0_guess`` is None when it must be estimated."""
    midi = None
    if cfg.note is not None:
        try:
            midi = notes.parse_note(cfg.note)
        except notes.NoteError as e:
            raise DemoError(str(e)) from None
        if not notes.PIANO_RANGE[0] <= midi <= notes.PIANO_RANGE[1]:
            raise DemoError(f"note {cfg.note!r} (MIDI {midi}) is outside the piano's range A0-C8 (MIDI 21-108)")
    if cfg.wav is not None:
        try:
            audio, rate = read_audio_reporting(cfg.wav, log)
        except (FileNotFoundError, ValueError) as e:
            raise DemoError(str(e)) from None
        clip, name = notes.trim_clip(audio, rate, cfg.seconds, cfg.sample_rate), Path(cfg.wav).stem
    elif midi is None:
        raise DemoError("give a note or a WAV file")
    else:
        try:
            clip, rate, midi = notes.load_note(midi)
        except notes.NoteError as e:
            raise DemoError(str(e)) from None
        clip, name = resample(clip[None], rate, cfg.sample_rate)[0], notes.note_name(midi)
    if not np.any(clip):
        raise DemoError(f"{cfg.wav or 'note ' + name}: the audio is silent")
    frames = min(len(clip), int(cfg.seconds * cfg.sample_rate)) // cfg.hop
    if frames < 8:
        raise DemoError(f"the target is too short: {len(clip) / cfg.sample_rate:.2f} s")
    f0 = notes.midi_to_hz(midi) if midi is not None else None
    return np.ascontiguousarray(clip[:frames * cfg.hop], np.float32), name, f0


DEMO_HOME = "~/audiograd-demos"     # default parent of the output folder when the current directory is in a git checkout


def inside_git_work_tree(path: Path) -> bool:
    """True when ``path`` or a folder above it holds ``.git`` (a folder, or the file of a worktree or
    submodule). Walks up the path without running git, so it works where git is not installed."""
    path = Path(path).expanduser().absolute()
    for folder in (path, *path.parents):
        try:
            if (folder / ".git").exists():
                return True
        except OSError:             # an unreadable folder on the way up says nothing either way
            continue
    return False


def default_out_parents() -> List[Path]:
    """Where a default output folder may go, best first: the current directory unless it is inside a
    git checkout (the demo must not litter a repository), then ``~/audiograd-demos`` unless that is
    inside one, then ``audiograd-demos`` in the system's temporary directory."""
    candidates = []
    try:
        cwd = Path.cwd()
    except OSError:                 # the current directory was deleted
        cwd = None
    if cwd is not None and not inside_git_work_tree(cwd):
        candidates.append(Path("."))
    home = Path(DEMO_HOME).expanduser()
    if not inside_git_work_tree(home):
        candidates.append(home)
    candidates.append(Path(tempfile.gettempdir()) / "audiograd-demos")
    return candidates


def make_out_dir(out: Optional[str], name: str) -> Path:
    """Create the output folder. A given folder may exist only if it is empty; the default is a new
    ``piano-<name>-<YYYYmmdd-HHMMSS>`` folder (``-2``, ``-3``... if taken) in the first usable place of
    :func:`default_out_parents`."""
    if out is not None:
        path = Path(out)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise DemoError(f"output folder {path} exists and is not empty; choose another --out")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DemoError(f"cannot create output folder {path}: {e.strerror}") from None
        return path
    stem = f"piano-{name}-{datetime.now():%Y%m%d-%H%M%S}"
    errors = []
    for parent in default_out_parents():
        try:
            return _new_folder(parent, stem)
        except OSError as e:
            errors.append(f"{parent}: {e.strerror or e}")
    raise DemoError(f"cannot create an output folder like {stem} ({'; '.join(errors)}); choose one with --out")


def _new_folder(parent: Path, stem: str) -> Path:
    """Create ``parent/stem`` (or ``stem-2``, ``stem-3``...) and return it; OSError if ``parent`` is unusable."""
    parent.mkdir(parents=True, exist_ok=True)
    for i in range(1, 1000):
        path = parent / (stem if i == 1 else f"{stem}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free name like {stem}")


def build_synth(clip: np.ndarray, f0_guess: Optional[float], cfg: PianoConfig) -> PianoSynth:
    """Measure the clip's partials and extra peaks and build the synthesizer for them."""
    sr = cfg.sample_rate
    fit = partials.estimate_partials(clip, sr, f0_guess)
    freqs = partials.refine_frequencies(clip, sr, fit.frequencies(partials.partial_count(fit, sr, cfg.max_partials)),
                                        fit.f0)
    freqs = np.concatenate([freqs, partials.extra_peaks(clip, sr, freqs, cfg.extra_sines, cfg.extra_distance * fit.f0)])
    phases = partials.initial_phases(clip, sr, freqs)
    return PianoSynth(freqs, phases, len(clip) // cfg.hop, cfg.hop, sr, cfg.hidden, cfg.noise_bands, cfg.seed)


def run(cfg: Optional[PianoConfig] = None, log: Callable[[str], None] = print, **overrides) -> PianoResult:
    """Train the synthesizer on the note and write the outputs; returns a :class:`PianoResult`.

    ``overrides`` replace fields of ``cfg`` (e.g. ``run(steps=50, out="x")``). Raises
    :class:`DemoError` for an unknown note, an unreadable file or an unusable output folder.
    """
    cfg = replace(cfg or PianoConfig(), **overrides)
    if cfg.steps < 1:
        raise DemoError(f"steps must be at least 1, got {cfg.steps}")
    t0 = time.perf_counter()
    clip, name, f0_guess = load_target(cfg, log)
    existed = cfg.out is not None and Path(cfg.out).exists()
    out_dir = make_out_dir(cfg.out, name)
    log(f"output folder: {out_dir.absolute()}" + _where_note(cfg.out, out_dir))
    try:
        losses, final, audio = _train(cfg, clip, f0_guess, name, log)
        write_audio(out_dir / "target.wav", clip, cfg.sample_rate)
        write_audio(out_dir / "result.wav", audio, cfg.sample_rate)
        image = comparison_image([clip, audio], ["target", "result"], sample_rate=cfg.sample_rate)
        write_png(out_dir / "spectrogram.png", image)
    except BaseException:
        if not existed:                 # a failed or interrupted run leaves no empty folder behind
            _remove_if_empty(out_dir)
        raise
    res = PianoResult(out_dir, name, losses[0], final, losses, time.perf_counter() - t0)
    log(f"MR-STFT distance: initial {res.initial_loss:.4f}, final {res.final_loss:.4f} "
        f"({res.ratio:.1f}x lower) after {cfg.steps} steps, {res.seconds:.1f} s in all")
    log(f"wrote target.wav, result.wav and spectrogram.png (target above, result below) in {out_dir.absolute()}")
    return res


def _train(cfg: PianoConfig, clip: np.ndarray, f0_guess: Optional[float], name: str, log: Callable[[str], None]):
    """Build the synthesizer and train it; ``(losses, final_loss, result_audio)``."""
    synth = build_synth(clip, f0_guess, cfg)
    log(f"target: {name}, {len(clip) / cfg.sample_rate:.2f} s at {cfg.sample_rate} Hz; "
        f"{synth.n_sines} sinusoids, {cfg.noise_bands} noise bands")
    loss_fn = MultiResolutionSTFTLoss()
    opt = ag.optim.Adam(synth.parameters(), lr=cfg.lr)
    sched = ag.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps, eta_min=cfg.lr * cfg.lr_final)
    target = ag.tensor(clip.reshape(1, 1, -1))

    @ag.jit
    def train_step(y):
        opt.zero_grad()
        loss = loss_fn(synth(), y)
        loss.backward()
        opt.step()
        return loss

    losses = []
    bar = _progress(cfg.steps, cfg.progress)
    try:
        for _ in range(cfg.steps):
            losses.append(train_step(target).item())
            sched.step()
            bar.set_postfix_str(f"loss {losses[-1]:.4f}", refresh=False)
            bar.update()
    finally:
        bar.close()
    with ag.no_grad():
        result = synth()
        final = loss_fn(result, target).item()
    return losses, final, result.numpy().reshape(-1)


def _where_note(out: Optional[str], out_dir: Path) -> str:
    """Why a default folder is not in the current directory, if it is not."""
    if out is not None or out_dir.parent == Path("."):
        return ""
    return " (the current directory is inside a git checkout, so the demo writes elsewhere; --out DIR chooses)"


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def _progress(total: int, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, desc="training", unit="step", disable=not enabled, file=sys.stderr,
                dynamic_ncols=True)
