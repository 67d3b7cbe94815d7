"""Every code snippet in README.md runs as pasted, on a small model made here.

Python blocks run in a fresh folder holding what they read: ``sao/model.safetensors`` and
``sao/model_config.json`` (a tiny random text-to-audio model, its autoencoder a tiny Oobleck, in
Stable Audio Open's file layout), ``t5-base/`` (its tiny T5), ``song.wav`` and ``latents.npy``.
Command lines of the ``encode``/``decode``/``reconstruct``/``generate`` commands run through
``audiograd.cli.main`` with the tiny config. The install commands are checked against ``.ci/run`` and the package's dependencies.
"""
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiograd.cli.main import main
from oobleck_configs import TINY
from sao_configs import tiny_config, tiny_model, write_files

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
FENCE = re.compile(r"^( *)```(\w+)\n(.*?)^\1```", re.M | re.S)
CLI_COMMANDS = ("encode", "decode", "reconstruct")
# modules of the test extra and the reference implementations: the main job must not need them
TEST_ONLY_MODULES = ("torch", "stable_audio_tools", "auraloss", "einops", "alias_free_torch", "hypothesis", "pytest",
                     "transformers", "k_diffusion", "torchsde", "scipy")


def blocks(language):
    """``(line_number, code)`` of each fenced block of ``language`` in README.md, dedented."""
    return [(README[:m.start()].count("\n") + 1, textwrap.dedent(m.group(3)))
            for m in FENCE.finditer(README) if m.group(2) == language]


def shell_lines():
    """Every command line of the README's sh blocks, comments removed, as argv lists."""
    return [shlex.split(line, comments=True) for _, code in blocks("sh") for line in code.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def audiograd_commands(name):
    """argv (after the program) of the README's ``audiograd <name> ...`` command lines."""
    return [argv[1:] for argv in shell_lines() if Path(argv[0]).name == "audiograd" and argv[1:2] == [name]]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A folder with the files the snippets read, made with the project's own code."""
    d = tmp_path_factory.mktemp("readme_inputs")
    # a tiny text-to-audio model whose autoencoder is TINY, and its T5 folder
    config = tiny_config("sao-1.0", vae=TINY)
    write_files(d / "sao", config, tiny_model(config))
    (d / "sao" / "t5").rename(d / "t5-base")
    audio = 0.3 * np.random.default_rng(0).standard_normal((1602, 2))
    sf.write(d / "song.wav", audio.astype(np.float32), 44100, subtype="FLOAT")
    latents = (0.5 * np.random.default_rng(1).standard_normal((TINY["latent_dim"], 16))).astype(np.float32)
    np.save(d / "latents.npy", latents)
    return d


@pytest.fixture
def workdir(inputs, tmp_path, monkeypatch):
    """A copy of the inputs as the current directory."""
    work = tmp_path / "work"
    shutil.copytree(inputs, work)
    monkeypatch.chdir(work)
    return work


def _python_params():
    params = []
    for line, code in blocks("python"):
        marks = [pytest.mark.gpu] if '"cuda"' in code else []
        params.append(pytest.param(code, id=f"line{line}", marks=marks))
    return params


def test_readme_has_the_snippets_this_file_tests():
    assert len(blocks("python")) >= 3
    assert audiograd_commands("encode") and audiograd_commands("decode") and audiograd_commands("reconstruct")
    assert any("--random-weights" in argv for argv in audiograd_commands("reconstruct"))


@pytest.mark.parametrize("code", _python_params())
def test_python_snippet_runs(code, workdir):
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_snippet"})


def test_cli_snippets_run_in_order(workdir, capsys):
    """The encode, decode and reconstruct lines, in README order (decode reads what encode wrote),
    with the tiny config where a line relies on the default (Stable Audio Open 1.0's)."""
    lines = [argv for argv in shell_lines() if Path(argv[0]).name == "audiograd" and argv[1:2]
             and argv[1] in CLI_COMMANDS]
    (workdir / "latents.npy").unlink()                 # must come from the README's encode line
    for argv in lines:
        args = argv[1:] + ([] if "--config" in argv else ["--config", "sao/model_config.json"])
        rc = main(args + ["--quiet"])
        err = capsys.readouterr().err
        assert rc == 0, (argv, err)
        output = workdir / argv[3]
        assert output.is_file() and output.stat().st_size > 0, argv
        if output.suffix == ".wav":
            audio, sr = sf.read(output)
            assert sr == 44100 and audio.ndim == 2 and np.isfinite(audio).all()


def test_install_commands():
    """The demo command installs the package without extras; the test command is .ci/run's."""
    lines = [line.strip() for _, code in blocks("sh") for line in code.splitlines()]
    demo = [line for line in lines if line.endswith("audiograd demo")]
    assert len(demo) == 1 and "pip install -e . " in demo[0] and "[" not in demo[0]
    test = [line for line in lines if "pytest" in line and "pip install" in line]
    assert len(test) == 1 and test[0].startswith("python3 -m venv .venv && ")
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test[0] in ci and "set -euo pipefail" in ci


def _base_requirements():
    """The package's own requirements: from pyproject.toml where Python reads TOML (3.11+), else
    from the installed distribution's metadata."""
    try:
        import tomllib
    except ImportError:
        return [r for r in metadata.requires("audiograd") or [] if "extra ==" not in r]
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def test_base_install_has_no_test_only_dependency():
    """The package's own requirements (the main job's) name none of the test extra's modules, and
    the CLI and the demo import with those modules made unimportable."""
    base = _base_requirements()
    names = {re.split(r"[<>=!~ ;\[]", r, maxsplit=1)[0].lower().replace("-", "_") for r in base}
    assert names and not names & set(TEST_ONLY_MODULES)
    blocker = ("import sys\n"
               "class Block:\n"
               "    def find_spec(self, name, path=None, target=None):\n"
               f"        if name.split('.')[0] in {TEST_ONLY_MODULES!r}:\n"
               "            raise ImportError('blocked: ' + name)\n"
               "sys.meta_path.insert(0, Block())\n"
               "import audiograd.examples.piano, audiograd.cli.audio_commands\n"
               "from audiograd.cli.main import main\n"
               "try:\n"
               "    main(['demo', '--help'])\n"
               "except SystemExit as e:\n"
               "    sys.exit(e.code)\n")
    proc = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
