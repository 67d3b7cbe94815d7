"""Pre-encoding with one GPU encoder actor on a local Ray that ``pre_encode`` starts itself: the
latents match single-file encoding on the GPU and on the CPU, and the work ran in one GPU worker.
Run with ``pytest --gpu`` on a machine with an NVIDIA GPU."""
import json
import os

import numpy as np
import pytest

from audiograd.models.chunked import encode_chunked
from audiograd.preencode import pre_encode
from audiograd.preencode.items import load_item
from audiograd.preencode.settings import PreEncodeSettings
from audiograd.preencode.worker import load_encoder_model
from oobleck_configs import TINY
from sat_dataset import write_dataset

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ray = pytest.importorskip("ray", reason="the pre-encoding pipeline runs on Ray (pip install 'audiograd[ray]')")
pytestmark = pytest.mark.gpu


def test_one_gpu_actor_encodes_like_single_file_encoding(tmp_path):
    root = tmp_path / "data"
    files = write_dataset(root)
    config = tmp_path / "tiny_config.json"
    config.write_text(json.dumps(TINY))
    out = tmp_path / "out"
    summary = pre_encode(root, out, config=config, random_weights=True, chunked=True, gpus_per_worker=1,
                         progress=False)
    assert summary.done == len(files["good"]) and summary.failed == len(files["broken"])
    assert len(summary.per_worker) == 1
    settings = PreEncodeSettings(root, out, config=config, random_weights=True, chunked=True)
    on_gpu, on_cpu = load_encoder_model(settings, on_gpu=True), load_encoder_model(settings)
    for rel in files["good"]:
        latents = np.load(out / f"{rel}.npy")
        audio = load_item(str(root / rel), rel, TINY["sample_rate"], TINY["io_channels"], None)[0][None]
        gpu_single = encode_chunked(on_gpu, audio, chunk_samples=128 * 8)[0]
        np.testing.assert_array_equal(latents, gpu_single, err_msg=rel)
        cpu_single = encode_chunked(on_cpu, audio, chunk_samples=128 * 8)[0]
        np.testing.assert_allclose(latents, cpu_single, rtol=1e-4, atol=1e-5 * np.abs(cpu_single).max(), err_msg=rel)
