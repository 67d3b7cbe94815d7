"""Pre-encoding on a local Ray (started by each run, in a child process): outputs against single-file encoding and
stable-audio-tools' loaders, the error report, work spread over two worker processes, resume."""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from audiograd.models.chunked import encode_chunked
from audiograd.preencode import PreEncodeError, pre_encode
from audiograd.preencode.settings import PreEncodeSettings
from audiograd.preencode.worker import load_encoder_model
from oobleck_configs import TINY
from preencode.ray_subprocess import pre_encode_in_child
from sat_dataset import sample_dataset, sat_dataset, write_dataset

# the Ray started here listens on loopback only (as the one pre_encode starts itself)
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
if importlib.util.find_spec("ray") is None:  # not imported here: each Ray run has its own process
    pytest.skip("the pre-encoding pipeline runs on Ray (pip install 'audiograd[ray]')", allow_module_level=True)

SAMPLE_SIZE = 8192   # longer than some test files, shorter than others: both padding and cropping


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("dataset")
    config = root.parent / "tiny_config.json"
    config.write_text(json.dumps(TINY))
    return root, config, write_dataset(root)


def _run_into(tmp_path_factory, data, name, **options):
    root, config, files = data
    out = tmp_path_factory.mktemp(name)
    return out, pre_encode_in_child(root, out, config=config, random_weights=True, **options)


@pytest.fixture(scope="module")
def chunked_run(data, tmp_path_factory):
    return _run_into(tmp_path_factory, data, "chunked", chunked=True, workers=2)


@pytest.fixture(scope="module")
def padded_run(data, tmp_path_factory):
    return _run_into(tmp_path_factory, data, "padded", sample_size=SAMPLE_SIZE, batch_size=3)


def _latents(out):
    return {str(p.relative_to(out))[:-4]: np.load(p) for p in sorted(out.rglob("*.npy"))}


def test_chunked_outputs_equal_single_file_encoding(chunked_run, data, tmp_path):
    """Each item's latents are bit for bit those of `audiograd encode` of its file."""
    from audiograd.cli.main import main
    out, summary = chunked_run
    root, config, files = data
    latents = _latents(out)
    assert sorted(latents) == files["good"]
    for rel in files["good"]:
        target = tmp_path / "single.npy"
        assert main(["encode", str(root / rel), str(target), "--config", str(config), "--random-weights",
                     "-q"]) == 0
        np.testing.assert_array_equal(latents[rel], np.load(target), err_msg=rel)


def test_error_report_and_summary(chunked_run, data):
    out, summary = chunked_run
    root, config, files = data
    assert (summary.done, summary.skipped, summary.failed) == (len(files["good"]), 0, len(files["broken"]))
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["done"] == summary.done and report["summary"]["failed"] == summary.failed
    failed = {item["path"]: item["error"] for item in report["failed"]}
    assert sorted(failed) == sorted(str(root / rel) for rel in files["broken"])
    for rel, reason in files["broken"].items():
        assert str(root / rel) in failed[str(root / rel)] and reason in failed[str(root / rel)], failed[str(root / rel)]
    seconds = sum(np.load(out / f"{rel}.npy").shape[1] * 8 for rel in files["good"]) / 44100
    assert summary.audio_hours * 3600 == pytest.approx(seconds, rel=0.01)
    assert not any(out.rglob(".*"))     # no temporary file left


def test_two_workers_each_in_its_own_process_share_the_work(chunked_run):
    out, summary = chunked_run
    assert len(summary.per_worker) == 2, summary.per_worker
    assert all(count > 0 for count in summary.per_worker.values())
    assert len({worker.rsplit(":", 1)[1] for worker in summary.per_worker}) == 2   # two process ids


def test_rerun_skips_complete_items_untouched(chunked_run, data):
    out, _ = chunked_run
    root, config, files = data
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.npy")}
    summary = pre_encode_in_child(root, out, config=config, random_weights=True, chunked=True, workers=2)
    assert (summary.done, summary.skipped, summary.failed) == (0, len(files["good"]), len(files["broken"]))
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.npy")} == before


def test_padded_items_equal_reference_loader_and_plain_loop(padded_run, data, tmp_path):
    """Latents of the reference loader's padded/cropped audio; the same bits without Ray."""
    out, summary = padded_run
    root, config, files = data
    latents = _latents(out)
    assert sorted(latents) == files["good"] and summary.failed == len(files["broken"])
    model = load_encoder_model(PreEncodeSettings(root, out, config=config, random_weights=True))
    good = root.parent / "good_only"
    for rel in files["good"]:
        (good / rel).parent.mkdir(parents=True, exist_ok=True)
        (good / rel).write_bytes((root / rel).read_bytes())
    reference = sample_dataset(good, SAMPLE_SIZE)
    for index, filename in enumerate(reference.filenames):
        audio, info = reference[index]
        rel = info["relpath"]
        expected = encode_chunked(model, audio.numpy()[None], chunk_samples=128 * 8)[0]
        np.testing.assert_array_equal(latents[rel], expected, err_msg=rel)
        meta = json.loads((out / f"{rel}.json").read_text())
        assert len(meta["padding_mask"]) == expected.shape[1] == SAMPLE_SIZE // 8
    loop_out = tmp_path / "loop"
    loop = pre_encode(root, loop_out, config=config, random_weights=True, sample_size=SAMPLE_SIZE, batch_size=3,
                      progress=False, use_ray=False)
    assert (loop.done, loop.failed) == (summary.done, summary.failed)
    loop_latents = _latents(loop_out)
    for rel in files["good"]:
        np.testing.assert_array_equal(loop_latents[rel], latents[rel])


def test_stable_audio_tools_pre_encoded_loader_reads_the_folder(padded_run, data):
    out, _ = padded_run
    root, config, files = data
    dataset = sat_dataset()
    loader = dataset.PreEncodedDataset([dataset.LocalDatasetConfig(id="ours", path=str(out))],
                                       latent_crop_length=SAMPLE_SIZE // 8 // 2)
    assert len(loader) == len(files["good"])
    for index in range(len(loader)):
        latents, info = loader[index]
        ours = np.load(info["latent_filename"])
        np.testing.assert_array_equal(latents.numpy(), ours[:, :SAMPLE_SIZE // 8 // 2])
        assert info["relpath"] in files["good"] and info["sample_rate"] == 44100
        assert info["padding_mask"][0].shape == (SAMPLE_SIZE // 8 // 2,)


def test_uri_input_and_seeded_posterior_samples(data, tmp_path):
    """file:// goes through the remote-filesystem reader; --sample draws each item's noise from
    its own seed, the same in every run."""
    root, config, files = data
    runs = []
    for name in ("a", "b"):
        pre_encode(f"file://{root}", tmp_path / name, config=config, random_weights=True, sample_size=4096,
                   sample=True, seed=7, progress=False, use_ray=False)
        runs.append(_latents(tmp_path / name))
    assert sorted(runs[0]) == files["good"]
    settings = PreEncodeSettings(root, tmp_path, config=config, random_weights=True, seed=7)
    model = load_encoder_model(settings)
    rel = files["good"][3]
    meta = json.loads((tmp_path / "a" / f"{rel}.json").read_text())
    assert meta["path"] == f"file://{root}/{rel}"
    from audiograd.preencode.items import load_item
    audio, _, _ = load_item(str(root / rel), rel, 44100, 2, 4096)
    expected = encode_chunked(model, audio[None], chunk_samples=1024, sample=True, seed=settings.item_seed(rel))[0]
    np.testing.assert_array_equal(runs[0][rel], expected)
    for rel in files["good"]:
        np.testing.assert_array_equal(runs[0][rel], runs[1][rel])


def test_settings_that_cannot_run(data, tmp_path):
    root, config, files = data
    with pytest.raises(PreEncodeError, match="not both"):
        pre_encode(root, tmp_path, checkpoint=config, random_weights=True)
    with pytest.raises(PreEncodeError, match="no weights"):
        pre_encode(root, tmp_path, config=config)
    with pytest.raises(PreEncodeError, match="input not found"):
        pre_encode(tmp_path / "nothing", tmp_path / "out", config=config, random_weights=True, use_ray=False)
    with pytest.raises(PreEncodeError, match="no audio files"):
        pre_encode(tmp_path, tmp_path / "out", config=config, random_weights=True, use_ray=False)
    with pytest.raises(PreEncodeError, match="batch-size must be a positive integer"):
        pre_encode(root, tmp_path / "out", config=config, random_weights=True, batch_size=0)
    with pytest.raises(PreEncodeError, match="shorter than one latent"):
        pre_encode(root, tmp_path / "out", config=config, random_weights=True, sample_size=4)
    with pytest.raises(PreEncodeError, match="tf32 runs on GPU workers"):
        pre_encode(root, tmp_path / "out", config=config, random_weights=True, precision="tf32")
    with pytest.raises(PreEncodeError, match="precision must be fp32 or tf32"):
        pre_encode(root, tmp_path / "out", config=config, random_weights=True, precision="fp16", gpus_per_worker=1)


def _run_cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "audiograd", *map(str, args)], capture_output=True, text=True,
                          timeout=300, **kwargs)


def test_without_ray_the_command_says_so_and_import_stays_light(data, tmp_path):
    root, config, files = data
    blocked = ("import sys; sys.modules['ray'] = None; from audiograd.cli.main import main; "
               f"sys.exit(main(['pre-encode', {str(root)!r}, {str(tmp_path / 'out')!r}, '--config', "
               f"{str(config)!r}, '--random-weights']))")
    result = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Ray, which is not installed: pip install 'audiograd[ray]'" in result.stderr
    light = subprocess.run([sys.executable, "-c", "import sys, audiograd, audiograd.preencode, audiograd.cli.main; "
                            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'pyarrow')))"],
                           capture_output=True, text=True, timeout=120)
    assert light.stdout.strip() == "[]", light.stdout + light.stderr


TAKES = 10


def test_killed_run_resumes_to_every_item_exactly_once(tmp_path):
    """The command (and the Ray it started) killed with SIGKILL while items are being written; the
    rerun finishes, and the folder holds every item once, whole, as an uninterrupted run writes it."""
    import signal
    import time
    import soundfile as sf
    root = tmp_path / "long"
    root.mkdir()
    rng = np.random.default_rng(3)
    for i in range(TAKES):
        sf.write(root / f"take{i:02d}.wav", (0.1 * rng.standard_normal((44096, 2))).astype(np.float32), 44100)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(TINY))
    args = ["pre-encode", root, tmp_path / "out", "--config", config, "--random-weights", "--chunked",
            "--workers", "1", "-q"]
    process = subprocess.Popen([sys.executable, "-m", "audiograd", *map(str, args)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 240
    while not list((tmp_path / "out").glob("*.json"))[1:] and time.time() < deadline and process.poll() is None:
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    written = len(list((tmp_path / "out").glob("*.wav.json")))
    assert 0 < written < TAKES, f"the kill did not land mid-run ({written} items written)"
    result = _run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert f"{TAKES - written} done, {written} skipped" in result.stderr
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == sorted([f"take{i:02d}.wav.{ext}" for i in range(TAKES) for ext in ("json", "npy")]
                           + ["details.json", "report.json"])
    clean = _run_cli(*args[:2], tmp_path / "clean", *args[3:])
    assert clean.returncode == 0, clean.stderr
    for i in range(TAKES):
        np.testing.assert_array_equal(np.load(tmp_path / "out" / f"take{i:02d}.wav.npy"),
                                      np.load(tmp_path / "clean" / f"take{i:02d}.wav.npy"))
