"""Find the system C compiler and build one shared library from a source file."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Optional, Sequence


class CompilerNotFoundError(RuntimeError):
    pass


class CompileError(RuntimeError):
    """The compiler rejected a generated kernel; carries its message and the source path."""

    def __init__(self, message: str, source_path: Path, tool: str = "C compiler"):
        super().__init__(f"{tool} failed on {source_path}:\n{message}")
        self.source_path = source_path
        self.compiler_output = message


def find_compiler(cc: Optional[str]) -> str:
    """Resolve the compiler: the explicit setting, then $CC, then gcc, clang, cc on PATH."""
    candidates = [cc] if cc else ([os.environ["CC"]] if os.environ.get("CC") else ["gcc", "clang", "cc"])
    for cand in candidates:
        path = shutil.which(cand)
        if path:
            return os.path.realpath(path)
    raise CompilerNotFoundError(
        f"no C compiler found (tried {', '.join(candidates)}): install gcc or clang, "
        "or point the CC environment variable (or audiograd.config.cc) at one")


def compiler_identity(path: str) -> str:
    """Identify the compiler without running it (path, size, modification time)."""
    st = os.stat(path)
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


def compile_shared(cc: str, flags: Sequence[str], source_path: Path, out_path: Path) -> None:
    cmd = [cc, *flags, str(source_path), "-o", str(out_path), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CompileError((proc.stderr or proc.stdout).strip() + f"\ncommand: {' '.join(cmd)}", source_path)
