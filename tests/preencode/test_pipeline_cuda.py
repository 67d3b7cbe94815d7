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


def test_tf32_loop_encodes_like_tf32_single_file_encoding_and_leaves_the_precision_setting(tmp_path):
    """In a plain loop the run's precision is set around each encoder call only: the caller's stays."""
    from audiograd.config import config as ag_config
    root = tmp_path / "data"
    files = write_dataset(root)
    config = tmp_path / "tiny_config.json"
    config.write_text(json.dumps(TINY))
    out = tmp_path / "out"
    assert ag_config.cuda_matmul_precision == "fp32"
    summary = pre_encode(root, out, config=config, random_weights=True, chunked=True, gpus_per_worker=1,
                         precision="tf32", progress=False, use_ray=False)
    assert ag_config.cuda_matmul_precision == "fp32"
    assert summary.done == len(files["good"])
    settings = PreEncodeSettings(root, out, config=config, random_weights=True, chunked=True)
    on_gpu = load_encoder_model(settings, on_gpu=True)
    for rel in files["good"]:
        audio = load_item(str(root / rel), rel, TINY["sample_rate"], TINY["io_channels"], None)[0][None]
        exact = encode_chunked(on_gpu, audio, chunk_samples=128 * 8)[0]
        ag_config.cuda_matmul_precision = "tf32"
        try:
            tf32 = encode_chunked(on_gpu, audio, chunk_samples=128 * 8)[0]
        finally:
            ag_config.cuda_matmul_precision = "fp32"
        np.testing.assert_array_equal(np.load(out / f"{rel}.npy"), tf32, err_msg=rel)
        np.testing.assert_allclose(tf32, exact, rtol=1e-2, atol=3e-3 * np.abs(exact).max(), err_msg=rel)
