import os
import sys
import tempfile

import pytest

# shared test helpers (oobleck_configs, ...) import by name from any test folder
sys.path.insert(0, os.path.dirname(__file__))

# every test session compiles into its own cache unless one is named explicitly
if "AUDIOGRAD_CACHE_DIR" not in os.environ:
    os.environ["AUDIOGRAD_CACHE_DIR"] = tempfile.mkdtemp(prefix="audiograd-test-cache-")


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="run tests marked slow")
    parser.addoption("--gpu", action="store_true", help="run tests marked gpu (needs an NVIDIA GPU)")
    parser.addoption("--device", default="cpu",
                     help="where tensors made from data live (a device name): --device cuda runs the whole "
                          "suite on the GPU (implies --gpu), --device interp on the numpy interpreter; tests of "
                          "CPU internals, marked cpu_only, are skipped on any other device")
    parser.addoption("--fuzz-cases", type=int, default=None, metavar="N",
                     help="mutated weight files per format in tests/models/test_checkpoint_fuzz.py "
                          "(default: a bounded CI run)")


def pytest_configure(config):
    if config.getoption("--device") != "cpu":
        import audiograd
        audiograd.set_default_device(config.getoption("--device"))


def pytest_collection_modifyitems(config, items):
    device = config.getoption("--device")
    if device.split(":")[0] == "cuda":
        config.option.gpu = True
    for item in items:
        if device != "cpu" and "cpu_only" in item.keywords:
            item.add_marker(pytest.mark.skip(reason="tests CPU internals (C kernels, host buffers)"))
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(pytest.mark.skip(reason="slow: run with --runslow"))
        if "gpu" in item.keywords and not config.getoption("--gpu"):
            item.add_marker(pytest.mark.skip(reason="needs a GPU: run with --gpu on a GPU machine"))
