"""Piano notes for the demo: note names, shipped clips, rendering more through fluidsynth.

A note is named like ``C4``, ``F#3``, ``Bb2`` (scientific pitch notation, ``C4`` = MIDI 60) or
given as a MIDI number. Shipped clips live in ``examples/data/piano-<NAME>.flac``; other notes
are rendered with the ``fluidsynth`` program and a General MIDI soundfont when both are present.
"""
from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

DATA_DIR = Path(__file__).parent / "data"
SOUNDFONT_PATHS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/soundfonts/FluidR3_GM.sf2",
                   "/usr/share/sounds/sf2/default-GM.sf2")
CLIP_RATE = 22050
CLIP_SECONDS = 2.0
PIANO_RANGE = (21, 108)     # A0 .. C8, the keys of a piano

_NAMES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_SHARP_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]


class NoteError(ValueError):
    """A note that cannot be parsed, found or rendered; the message says why."""


def parse_note(note) -> int:
    """MIDI number of ``note``: an int / digit string (0-127) or a name like ``C4``, ``F#3``, ``Bb2``."""
    text = str(note).strip()
    if re.fullmatch(r"\d+", text):
        midi = int(text)
    else:
        m = re.fullmatch(r"([A-Ga-g])([#b]?)(-?\d)", text)
        if not m:
            raise NoteError(f"unknown note {note!r}: use a name like C4, F#3, Bb2 or a MIDI number")
        letter, accidental, octave = m.groups()
        midi = 12 * (int(octave) + 1) + _NAMES[letter.upper()] + {"#": 1, "b": -1, "": 0}[accidental]
    if not 0 <= midi <= 127:
        raise NoteError(f"note {note!r} is outside the MIDI range 0-127")
    return midi


def note_name(midi: int) -> str:
    """Scientific pitch name of a MIDI number, sharps for black keys (60 -> ``C4``)."""
    return f"{_SHARP_NAMES[midi % 12]}{midi // 12 - 1}"


def midi_to_hz(midi: float) -> float:
    """Equal-tempered frequency of a MIDI note number (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((midi - 69) / 12.0)


def shipped_notes() -> dict:
    """``{midi: path}`` of the clips bundled with the package."""
    out = {}
    for path in sorted(DATA_DIR.glob("piano-*.flac")):
        try:
            out[parse_note(path.stem[len("piano-"):])] = path
        except NoteError:
            continue
    return out


def midi_file_bytes(midi: int, seconds: float, velocity: int = 100, program: int = 0) -> bytes:
    """A format-0 Standard MIDI File: program change, one note held ``seconds``, end of track."""
    division = 480                          # ticks per quarter note; default tempo 120 bpm

    def vlq(n: int) -> bytes:               # variable-length quantity
        out = [n & 0x7F]
        while n > 0x7F:
            n >>= 7
            out.append(0x80 | (n & 0x7F))
        return bytes(reversed(out))

    ticks = int(round(seconds * 2 * division))
    track = (vlq(0) + bytes([0xC0, program]) + vlq(0) + bytes([0x90, midi, velocity])
             + vlq(ticks) + bytes([0x80, midi, 0]) + vlq(0) + b"\xff\x2f\x00")
    return (b"MThd" + struct.pack(">IHHH", 6, 0, 1, division)
            + b"MTrk" + struct.pack(">I", len(track)) + track)


def find_soundfont(soundfont: Optional[str] = None) -> Path:
    """The soundfont to render with: ``soundfont`` if given, else a General MIDI one installed here."""
    candidates = [soundfont] if soundfont else [os.environ.get("AUDIOGRAD_SOUNDFONT"), *SOUNDFONT_PATHS]
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    raise NoteError("no General MIDI soundfont found (install fluid-soundfont-gm, or set "
                    "AUDIOGRAD_SOUNDFONT to an .sf2 file)")


def render_note(midi: int, seconds: float = CLIP_SECONDS, sample_rate: int = CLIP_RATE,
                soundfont: Optional[str] = None, velocity: int = 100) -> np.ndarray:
    """Render one acoustic-grand-piano note with fluidsynth; returns a trimmed mono clip (float32).

    The note is held for the whole clip; reverb and chorus are off; fluidsynth writes 32-bit
    float samples (no 16-bit noise floor). See :func:`trim_clip` for the rest.
    """
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise NoteError(f"note {note_name(midi)} is not shipped and the fluidsynth program is not "
                        f"installed to render it (shipped: {', '.join(map(note_name, shipped_notes()))})")
    sf2 = find_soundfont(soundfont)
    import soundfile as sf
    with tempfile.TemporaryDirectory(prefix="audiograd-note-") as tmp:
        mid, wav = Path(tmp) / "note.mid", Path(tmp) / "note.wav"
        mid.write_bytes(midi_file_bytes(midi, seconds + 0.5, velocity))
        cmd = [exe, "-ni", "-R", "0", "-C", "0", "-g", "1.0", "-r", "44100", "-O", "float", "-F", str(wav),
               str(sf2), str(mid)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not wav.is_file():
            raise NoteError(f"fluidsynth failed to render note {note_name(midi)}: {done.stderr.strip()[-300:]}")
        audio, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    return trim_clip(audio.T, rate, seconds, sample_rate)


def trim_clip(audio: np.ndarray, rate: int, seconds: float, sample_rate: int,
              peak: float = 0.8, fade: float = 0.05) -> np.ndarray:
    """Mono-mix ``audio`` (channels, samples), start 2 ms before the onset, resample to
    ``sample_rate``, cut to at most ``seconds``, fade out the last ``fade`` seconds and scale
    to ``peak``."""
    from ..audio import resample
    mono = np.asarray(audio, np.float32).mean(axis=0)
    loud = np.flatnonzero(np.abs(mono) > 0.01 * np.abs(mono).max()) if mono.any() else np.zeros(1, int)
    start = max(int(loud[0]) - int(0.002 * rate), 0)
    mono = resample(mono[None, start:], rate, sample_rate)[0]
    mono = mono[:int(round(seconds * sample_rate))]
    k = min(int(fade * sample_rate), len(mono))
    if k:
        mono[-k:] *= 0.5 + 0.5 * np.cos(np.linspace(0, np.pi, k))
    top = np.abs(mono).max() if mono.size else 0.0
    return (mono * (peak / top) if top > 0 else mono).astype(np.float32)


def load_note(note) -> Tuple[np.ndarray, int, int]:
    """``(clip, sample_rate, midi)`` of a note: the shipped clip, else one rendered with fluidsynth."""
    midi = parse_note(note)
    shipped = shipped_notes()
    if midi in shipped:
        from ..audio import read_audio
        audio, rate = read_audio(shipped[midi])
        return audio.mean(axis=0), rate, midi
    return render_note(midi), CLIP_RATE, midi
