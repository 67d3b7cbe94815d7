"""tools/check_layers.py: stages import one way, device plug-ins stay apart, packages form no
cycles and no device names leak out of devices/; checked on the real package and on small fake ones."""
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "tools" / "check_layers.py"

_spec = importlib.util.spec_from_file_location("check_layers", SCRIPT)
check_layers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_layers)

# A fake package that keeps every rule: each test adds the modules that break one.
CLEAN = {
    "__init__.py": "from .tensor.tensor import Tensor\n",
    "dtypes.py": "",
    "graph/lazy.py": "from ..dtypes import *\n",
    "schedule/fuse.py": "from ..graph import lazy\n",
    "devices/__init__.py": "from . import registry\n",
    "devices/device.py": "",
    "devices/registry.py": """\
        import importlib

        KNOWN = ("cpu", "cuda")


        def load(name):
            return importlib.import_module(f"audiograd.devices.{name}")
        """,
    "devices/cpu/__init__.py": "from ..device import *\nfrom . import kernels\n",
    "devices/cpu/kernels.py": "import numpy as np\nfrom ...dtypes import *\n",
    "devices/cuda/__init__.py": "from ..device import *\n",
    "engine/run.py": "from ..devices import registry\n",
    "tensor/tensor.py": '''\
        """A tensor lives on "cpu" or "cuda"."""
        from ..engine import run


        class Tensor:
            def __init__(self, device, index):
                self.device = device
                self.label = f"cuda{index}"
        ''',
}


def fake_package(root, extra=()):
    """Write CLEAN, then the modules {path under audiograd/: source} in `extra`, under root."""
    for rel, text in {**CLEAN, **dict(extra)}.items():
        path = root / "audiograd" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_real_package_keeps_the_rules(capsys):
    status = check_layers.main(["--root", str(REPO)])
    assert status == 0, capsys.readouterr().out


def test_clean_fake_package_passes(tmp_path):
    assert check_layers.check(fake_package(tmp_path)) == []


def test_upward_import_at_module_level(tmp_path):
    root = fake_package(tmp_path, {"graph/x.py": "from ..engine import run\n"})
    assert check_layers.check(root) == [
        "audiograd/graph/x.py:1: [stages] imports audiograd.engine.run: stage engine (5) is above graph (1)"]


def test_upward_import_inside_a_function_counts(tmp_path):
    root = fake_package(tmp_path, {"schedule/memory.py": """\
        def plan():
            from audiograd.tensor import tensor
            return tensor
        """})
    assert check_layers.check(root) == [
        "audiograd/schedule/memory.py:2: [stages] imports audiograd.tensor.tensor: "
        "stage tensor (6) is above schedule (2)"]


def test_relative_imports_resolve_against_the_importing_package(tmp_path):
    root = fake_package(tmp_path, {
        "graph/__init__.py": "from . import lazy\nfrom ..engine import run\n",  # a package's own module
        "graph/deep/mod.py": "from .. import lazy\nfrom ... import engine\nfrom .... import beyond\n",
        "graph/view.py": "from .lazy import Node\nfrom ..dtypes import float32\nfrom ..tensor.tensor import Tensor\n",
    })
    assert check_layers.check(root) == [
        "audiograd/graph/__init__.py:2: [stages] imports audiograd.engine.run: stage engine (5) is above graph (1)",
        "audiograd/graph/deep/mod.py:2: [stages] imports audiograd.engine: stage engine (5) is above graph (1)",
        "audiograd/graph/view.py:3: [stages] imports audiograd.tensor.tensor: stage tensor (6) is above graph (1)"]


def test_type_checking_imports_are_exempt(tmp_path):
    root = fake_package(tmp_path, {"graph/hints.py": """\
        import typing
        from typing import TYPE_CHECKING

        if TYPE_CHECKING:
            from ..tensor.tensor import Tensor
        if typing.TYPE_CHECKING:
            from ..engine import run
        else:
            from ..engine import run
        """})
    assert check_layers.check(root) == [
        "audiograd/graph/hints.py:9: [stages] imports audiograd.engine.run: stage engine (5) is above graph (1)"]


def test_device_folder_may_not_import_another(tmp_path):
    root = fake_package(tmp_path, {
        "devices/cuda/kernels.py": "",
        "devices/cpu/copy.py": "from . import kernels\nfrom .. import registry\nfrom ..cuda import kernels\n",
    })
    assert check_layers.check(root) == [
        "audiograd/devices/cpu/copy.py:3: [plug-ins] imports audiograd.devices.cuda.kernels of device folder cuda: "
        "only devices/registry.py may name a device folder"]


def test_outside_code_imports_only_the_modules_at_the_root_of_devices(tmp_path):
    root = fake_package(tmp_path, {
        "devices/cache.py": "",
        "engine/launch.py": "from ..devices import registry, device\n"
                            "from ..devices.cpu import kernels\n"
                            "import audiograd.devices.cache\n",
    })
    assert check_layers.check(root) == [
        "audiograd/engine/launch.py:2: [plug-ins] imports audiograd.devices.cpu.kernels of device folder cpu: "
        "only devices/registry.py may name a device folder"]


def test_registry_may_name_a_device_folder_but_an_import_statement_closes_a_cycle(tmp_path):
    root = fake_package(tmp_path, {"devices/registry.py": "from . import cuda\n"})
    assert check_layers.check(root) == [
        "audiograd/devices/cuda/__init__.py:1: [cycles] devices.cuda imports devices (audiograd.devices.device) "
        "on the package cycle devices.cuda -> devices -> devices.cuda",
        "audiograd/devices/registry.py:1: [cycles] devices imports devices.cuda (audiograd.devices.cuda) "
        "on the package cycle devices -> devices.cuda -> devices"]


def test_package_cycle_names_each_edge_once(tmp_path):
    root = fake_package(tmp_path, {
        "nn/layers.py": "from ..optim import sgd\n",
        "optim/sgd.py": "from ..nn import layers\n\n\ndef step():\n    from ..nn import layers\n",
    })
    assert check_layers.check(root) == [
        "audiograd/nn/layers.py:1: [cycles] nn imports optim (audiograd.optim.sgd) on the package cycle nn -> optim -> nn",
        "audiograd/optim/sgd.py:1: [cycles] optim imports nn (audiograd.nn.layers) on the package cycle optim -> nn -> optim"]


def test_device_name_literals_outside_devices(tmp_path):
    root = fake_package(tmp_path, {"devices/metal/__init__.py": "", "tensor/device.py": '''\
        """Where a tensor lives: "cpu", "cuda" or "cuda:1"."""
        # the default is "cuda" when a GPU is found
        DEFAULT = "cuda"
        SECOND = "cuda:1"
        NOT_NAMES = ["cuda:x", "cuda:", "CUDA", "gpu", f"cuda{0}"]


        def plugin():
            "cuda"
            return "metal"
        '''})
    assert check_layers.check(root) == [
        "audiograd/tensor/device.py:3: [device-neutral] device name 'cuda'",
        "audiograd/tensor/device.py:4: [device-neutral] device name 'cuda:1'",
        "audiograd/tensor/device.py:10: [device-neutral] device name 'metal'"]


def test_host_buffer_isinstance_in_engine_stages(tmp_path):
    test = "import numpy as np\n\n\ndef on_host(buf):\n    return isinstance(buf, np.ndarray)\n"
    root = fake_package(tmp_path, {
        "schedule/memory.py": test,
        "models/weights.py": test,  # outside the engine stages: not a device test there
        "nn/conv.py": "import numpy\n\nHOST = lambda b: isinstance(b, (int, numpy.ndarray))\n",
    })
    assert check_layers.check(root) == [
        "audiograd/nn/conv.py:3: [device-neutral] isinstance(..., np.ndarray) tests for a host buffer",
        "audiograd/schedule/memory.py:5: [device-neutral] isinstance(..., np.ndarray) tests for a host buffer"]


def test_device_attribute_compared_with_a_string(tmp_path):
    root = fake_package(tmp_path, {"models/place.py": """\
        def on_cpu(x, y):
            return x.device == "cpu"


        def elsewhere(x, y):
            return "npu" != x.buffer.device or x.device == y.device
        """})
    assert check_layers.check(root) == [
        "audiograd/models/place.py:2: [device-neutral] compares .device with 'cpu'",
        "audiograd/models/place.py:6: [device-neutral] compares .device with 'npu'"]


def test_unplaced_modules(tmp_path):
    root = fake_package(tmp_path, {"runtime/buffers.py": "from ..engine import run\n", "helpers.py": ""})
    assert check_layers.check(root) == [
        "audiograd/helpers.py:1: [stages] not placed in any stage",
        "audiograd/runtime/buffers.py:1: [stages] not placed in any stage"]


def test_exit_status_of_the_script(tmp_path):
    root = fake_package(tmp_path, {"graph/x.py": "from ..engine import run\n"})
    run = subprocess.run([sys.executable, str(SCRIPT), "--root", str(root)], capture_output=True, text=True)
    assert run.returncode == 1
    assert run.stdout.splitlines() == [
        "audiograd/graph/x.py:1: [stages] imports audiograd.engine.run: stage engine (5) is above graph (1)"]

    (root / "audiograd" / "graph" / "x.py").write_text("from ..dtypes import *\n")
    run = subprocess.run([sys.executable, str(SCRIPT), "--root", str(root)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout
    assert run.stdout.startswith("audiograd: 13 modules in 9 stages")
