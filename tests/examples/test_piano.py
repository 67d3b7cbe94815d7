"""The piano demo: note handling, partial estimation, a short training run, the command line."""
import shutil
import struct
import zlib

import numpy as np
import pytest
import soundfile as sf

from audiograd.cli.main import main
from audiograd.examples import notes, partials, piano

# a small, short run: about 0.6 s of audio, few sinusoids and bands, 25 steps
QUICK = dict(seconds=0.6, steps=25, lr=0.02, extra_sines=8, noise_bands=16, hidden=32, max_partials=24,
             progress=False)


def png_size(data: bytes):
    """(width, height) of a PNG after checking its signature, IHDR and the size of its pixel data."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    w, h, depth, ctype = struct.unpack(">IIBB", data[16:26])
    assert (depth, ctype) == (8, 2)
    idat, pos = b"", 8
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        if data[pos + 4:pos + 8] == b"IDAT":
            idat += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    assert len(zlib.decompress(idat)) == h * (1 + 3 * w)
    return w, h


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("piano") / "out"
    lines = []
    return piano.run(out=str(out), log=lines.append, **QUICK), lines


def test_quick_run_writes_outputs_and_learns(quick_run):
    res, lines = quick_run
    assert sorted(p.name for p in res.out_dir.iterdir()) == ["result.wav", "spectrogram.png", "target.wav"]
    target, sr = sf.read(res.out_dir / "target.wav")
    result, sr2 = sf.read(res.out_dir / "result.wav")
    assert sr == sr2 == 22050 and target.shape == result.shape and abs(len(target) - 0.6 * sr) <= 128
    assert np.isfinite(result).all() and 0 < np.abs(result).max() < 2
    w, h = png_size((res.out_dir / "spectrogram.png").read_bytes())
    assert h > w / 2 and h > 2 * 513                  # two 513-bin panels stacked
    assert len(res.losses) == QUICK["steps"]
    assert res.final_loss < 0.5 * res.initial_loss and res.losses[-1] < res.losses[0]
    assert any("initial" in line and "final" in line for line in lines)


def test_out_dir_is_never_reused(tmp_path, monkeypatch):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(piano.DemoError, match="not empty"):
        piano.make_out_dir(str(tmp_path / "full"), "C4")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    assert piano.make_out_dir(str(tmp_path / "new" / "deep"), "C4").is_dir()
    monkeypatch.chdir(tmp_path)
    a, b = piano.make_out_dir(None, "C4"), piano.make_out_dir(None, "C4")
    assert a != b and a.name.startswith("piano-C4-") and a.parent == b.parent == tmp_path.relative_to(tmp_path)


def test_note_names():
    assert [notes.parse_note(n) for n in ("C4", "A4", "60", "Bb2", "F#3", "c-1", 108)] == [60, 69, 60, 46, 54, 0, 108]
    assert notes.note_name(60) == "C4" and notes.note_name(70) == "A#4"
    assert notes.midi_to_hz(69) == 440.0
    for bad in ("H4", "C", "C44", "200", ""):
        with pytest.raises(notes.NoteError):
            notes.parse_note(bad)
    assert sorted(notes.shipped_notes()) == [48, 60, 69]


def test_midi_file_layout():
    data = notes.midi_file_bytes(60, 2.0)
    assert data[:4] == b"MThd" and struct.unpack(">IHHH", data[4:14]) == (6, 0, 1, 480)
    assert data[14:18] == b"MTrk" and struct.unpack(">I", data[18:22])[0] == len(data) - 22
    assert bytes([0x90, 60, 100]) in data and bytes([0x80, 60, 0]) in data and data.endswith(b"\xff\x2f\x00")


def test_partials_of_a_stretched_string():
    sr, f0, b = 22050, 196.0, 3e-4
    n = np.arange(sr)
    k = np.arange(1, 30)
    fk = k * f0 * np.sqrt(1 + b * k * k)
    # harmonic_oscillator's phase convention: sample n has phase 2 pi f (n + 1) / sr + phi
    audio = (np.sin(2 * np.pi * fk[:, None] * (n + 1) / sr + 0.3 * k[:, None]) / k[:, None]).sum(0) * np.exp(-n / sr)
    fit = partials.estimate_partials(audio, sr, 190.0)
    assert abs(fit.f0 - f0) < 0.2 and abs(fit.b - b) < 2e-5
    assert abs(partials.estimate_f0(audio, sr) - f0) < 3
    refined = partials.refine_frequencies(audio, sr, fit.frequencies(10), fit.f0)
    np.testing.assert_allclose(refined, fk[:10], atol=0.3)
    phases = partials.initial_phases(audio, sr, fk[:5], seconds=0.2)
    np.testing.assert_allclose(np.angle(np.exp(1j * (phases - 0.3 * k[:5]))), 0, atol=0.05)


def test_user_wav_is_mono_mixed_resampled_and_trimmed(tmp_path):
    sr = 44100
    t = np.arange(int(3 * sr)) / sr
    tone = np.sin(2 * np.pi * 220 * t) * np.exp(-t)
    stereo = np.stack([np.r_[np.zeros(sr // 2), tone][:len(t)], np.zeros(len(t))], 1)
    sf.write(tmp_path / "a.wav", stereo, sr)
    clip, name, f0 = piano.load_target(piano.PianoConfig(note=None, wav=str(tmp_path / "a.wav")))
    assert name == "a" and f0 is None and len(clip) == 2 * 22050 // 128 * 128
    assert np.abs(clip[:30]).max() < 0.01 < np.abs(clip[:200]).max()   # starts at the onset
    assert abs(partials.estimate_f0(clip, 22050) - 220) < 3


def test_user_wav_cut_short_is_read_with_a_one_line_warning(tmp_path):
    sr = 44100
    tone = np.sin(2 * np.pi * 220 * np.arange(sr) / sr).astype(np.float32)
    sf.write(tmp_path / "a.wav", tone, sr, subtype="FLOAT")
    data = (tmp_path / "a.wav").read_bytes()
    (tmp_path / "a.wav").write_bytes(data[:len(data) // 2])
    lines = []
    clip, name, _ = piano.load_target(piano.PianoConfig(note=None, wav=str(tmp_path / "a.wav")), lines.append)
    assert len(clip) > 0 and name == "a"
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "a.wav" in lines[0], lines


@pytest.mark.parametrize("argv, message", [
    (["--note", "H4"], "unknown note 'H4'"),
    (["--note", "300"], "outside the MIDI range"),
    (["--note", "C9"], "outside the piano's range"),
    (["--wav", "no/such/file.wav"], "not found: no/such/file.wav"),
])
def test_cli_bad_input(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                      # nothing may be written, but not into the repo
    assert main(["demo", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.startswith("audiograd demo: error:")
    assert not any(tmp_path.iterdir())


def test_cli_unreadable_silent_and_taken_outputs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    sf.write(tmp_path / "silent.wav", np.zeros(22050), 22050)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    for argv, message in [(["--wav", str(tmp_path / "bad.wav")], "not a readable audio file"),
                          (["--wav", str(tmp_path / "silent.wav")], "silent"),
                          (["--out", str(tmp_path / "taken")], "not empty")]:
        assert main(["demo", *argv]) == 2
        assert message in capsys.readouterr().err
    assert main(["demo", "sine", "--note", "C4"]) == 2


def test_unshipped_note_needs_fluidsynth(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(notes.NoteError, match="fluidsynth program is not installed"):
        notes.load_note("D4")


@pytest.mark.skipif(shutil.which("fluidsynth") is None or not any(
    p and __import__("os").path.isfile(p) for p in notes.SOUNDFONT_PATHS), reason="needs fluidsynth and a GM soundfont")
def test_renders_an_unshipped_note():
    clip, sr, midi = notes.load_note("D4")
    assert (sr, midi, len(clip)) == (22050, 62, 2 * 22050)
    assert abs(np.abs(clip).max() - 0.8) < 1e-6
    fit = partials.estimate_partials(clip, sr, notes.midi_to_hz(62))
    assert abs(fit.f0 - notes.midi_to_hz(62)) < 2


@pytest.mark.slow
def test_default_run_lowers_the_loss_tenfold(tmp_path):
    res = piano.run(out=str(tmp_path / "out"), progress=False, log=lambda s: None)
    assert res.ratio >= 10, (res.initial_loss, res.final_loss)


def test_noise_bank_bands_add_up_to_white_noise():
    from audiograd.examples.piano_synth import noise_bank
    bank = noise_bank(1000, 12, seed=3)
    np.testing.assert_allclose(bank.sum(1), np.random.default_rng(3).standard_normal(1000), atol=1e-5)
    spec = np.abs(np.fft.rfft(bank[:, 5]))
    freqs = np.fft.rfftfreq(1000)                    # band 5 of 12 peaks at 5/11 of Nyquist
    assert spec[np.abs(freqs - 0.5 * 5 / 11) > 0.5 / 11].max() < 1e-3 * spec.max()


def test_synth_plays_each_sinusoid_at_its_phase():
    import audiograd as ag
    from audiograd.dsp.synth import upsample_frames
    from audiograd.examples.piano_synth import PianoSynth
    sr, hop, frames, freqs, phases = 22050, 64, 8, [440.0, 1234.5], [2.0, -1.0]
    synth = PianoSynth(freqs, phases, frames, hop, sr, hidden=8, noise_bands=0)
    with ag.no_grad():
        audio = synth().numpy()[0, 0]
        amps = upsample_frames(synth.controls()[0], hop).numpy()[0]
    n = np.arange(frames * hop)[:, None]
    want = (amps * np.sin(2 * np.pi * np.array(freqs) * (n + 1) / sr + np.array(phases))).sum(1)
    np.testing.assert_allclose(audio[1:], want[1:], atol=1e-5 * np.abs(want).max())
