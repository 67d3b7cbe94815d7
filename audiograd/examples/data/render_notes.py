"""Render the demo's piano clips: ``python render_notes.py [--soundfont SF2] [NOTE ...]``.

Each note (default C3 C4 A4) is a Standard MIDI File (program 0, Acoustic Grand Piano,
velocity 100, held for the whole clip) rendered by ``fluidsynth -ni -R 0 -C 0 -g 1.0 -r 44100
-O float -F out.wav SF2 note.mid``, then mono-mixed, started 2 ms before the onset, resampled to 22050 Hz,
cut to 2 s with a 50 ms fade-out, scaled to a peak of 0.8 and written as 24-bit FLAC
(``piano-<NAME>.flac``) next to this script.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from audiograd.audio import write_audio
from audiograd.examples.notes import CLIP_RATE, SOUNDFONT_PATHS, note_name, parse_note, render_note


def main(argv=None) -> None:
    """Render the named notes into this folder."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notes", nargs="*", default=["C3", "C4", "A4"])
    p.add_argument("--soundfont", default=SOUNDFONT_PATHS[0])
    p.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = p.parse_args(argv)
    for note in args.notes:
        midi = parse_note(note)
        clip = render_note(midi, soundfont=args.soundfont)
        path = args.out / f"piano-{note_name(midi)}.flac"
        write_audio(path, clip, CLIP_RATE, subtype="PCM_24")
        print(f"{path.name}: MIDI {midi}, {len(clip) / CLIP_RATE:.2f} s, {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
