"""The output folder: an item is whole or absent, resume checks it, hostile leftovers are not trusted."""
import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from audiograd.preencode.settings import PreEncodeError
from audiograd.preencode.store import (claim_output, is_complete, item_paths, remove_stale_temporaries,
                                       write_item)

META = {"path": "/data/a/b.wav", "relpath": "a/b.wav", "timestamps": [0.0, 1.0], "seconds_start": 0,
        "seconds_total": 1, "sample_rate": 44100, "load_time": 0.1}


def _write(out, frames=5, relpath="a/b.wav", **changes):
    meta = dict(META, relpath=relpath, padding_mask=[1] * frames, **changes)
    write_item(out, relpath, np.ones((4, frames), np.float32), meta)


def test_written_item_is_complete(tmp_path):
    _write(tmp_path)
    npy, meta = item_paths(tmp_path, "a/b.wav")
    assert npy == tmp_path / "a" / "b.wav.npy" and meta == tmp_path / "a" / "b.wav.json"
    assert is_complete(tmp_path, "a/b.wav", 4, 5) and is_complete(tmp_path, "a/b.wav", 4, None)
    assert not is_complete(tmp_path, "a/b.wav", 4, 6)       # another sample size
    assert not is_complete(tmp_path, "a/b.wav", 3, 5)       # another model
    assert [p.name for p in tmp_path.rglob("*") if p.name.startswith(".")] == []


@pytest.mark.parametrize("damage", ["no json", "no npy", "cut npy", "nan", "json of another item",
                                    "field missing", "mask too short", "int64 latents", "json not an object",
                                    "json is a fifo"])
def test_damaged_items_are_not_complete(tmp_path, damage):
    _write(tmp_path)
    npy, meta = item_paths(tmp_path, "a/b.wav")
    if damage == "no json":
        meta.unlink()
    elif damage == "no npy":
        npy.unlink()
    elif damage == "cut npy":
        npy.write_bytes(npy.read_bytes()[:-3])
    elif damage == "nan":
        z = np.ones((4, 5), np.float32)
        z[2, 3] = np.nan
        np.save(npy, z)
    elif damage == "json of another item":
        meta.write_text(json.dumps(dict(json.loads(meta.read_text()), relpath="other.wav")))
    elif damage == "field missing":
        meta.write_text(json.dumps({k: v for k, v in json.loads(meta.read_text()).items() if k != "seconds_total"}))
    elif damage == "mask too short":
        meta.write_text(json.dumps(dict(json.loads(meta.read_text()), padding_mask=[1, 1])))
    elif damage == "int64 latents":
        np.save(npy, np.ones((4, 5), np.int64))
    elif damage == "json is a fifo":
        meta.unlink()
        os.mkfifo(meta)
    else:
        meta.write_text("[1, 2]")
    assert not is_complete(tmp_path, "a/b.wav", 4, 5)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(npy=st.binary(max_size=400), meta=st.binary(max_size=400), keep_npy_header=st.booleans())
def test_fuzzed_leftovers_never_crash_the_check(tmp_path, npy, meta, keep_npy_header):
    """Whatever bytes an earlier run (or anyone) left in the folder, the check answers True/False."""
    _write(tmp_path)
    npy_path, meta_path = item_paths(tmp_path, "a/b.wav")
    if keep_npy_header:
        npy = npy_path.read_bytes()[:128] + npy
    npy_path.write_bytes(npy)
    meta_path.write_bytes(meta)
    assert is_complete(tmp_path, "a/b.wav", 4, 5) in (True, False)


def test_stale_temporaries_are_removed(tmp_path):
    _write(tmp_path)
    (tmp_path / "a" / ".b.wav.npy.k3j_x9a1.tmp").write_bytes(b"half")
    (tmp_path / ".details.json.abcdefgh.tmp").write_bytes(b"{")
    (tmp_path / "a" / "keep.tmp").write_bytes(b"user file")
    assert remove_stale_temporaries(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["b.wav.json", "b.wav.npy", "keep.tmp"]


def test_folder_of_other_settings_is_refused(tmp_path):
    claim_output(tmp_path / "out", {"settings": {"sample_size": 100, "chunked": False}})
    claim_output(tmp_path / "out", {"settings": {"sample_size": 100, "chunked": False}})   # same: resumes
    with pytest.raises(PreEncodeError, match="other settings .*sample_size differ"):
        claim_output(tmp_path / "out", {"settings": {"sample_size": 200, "chunked": False}})
    (tmp_path / "out" / "details.json").write_text("{not json")
    with pytest.raises(PreEncodeError, match="details.json: unreadable"):
        claim_output(tmp_path / "out", {"settings": {}})
