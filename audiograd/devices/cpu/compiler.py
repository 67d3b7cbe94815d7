"""Find the system C compiler and build one shared library from a source file."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Optional, Sequence

from ..errors import SET_CC, CompileError, CompilerNotFoundError


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


def _save_log(source_path: Path, text: str) -> Optional[Path]:
    log = source_path.with_suffix(".log")
    try:
        log.unlink(missing_ok=True)  # never write through whatever was at that name
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return log
    except OSError:
        return None


def compile_shared(cc: str, flags: Sequence[str], source_path: Path, out_path: Path) -> None:
    """Compile ``source_path`` into the shared library ``out_path``; CompileError if that fails.

    The compiler's output goes to ``<source>.log`` next to the source when it fails.
    """
    cmd = [cc, *flags, str(source_path), "-o", str(out_path), "-lm"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    except OSError as e:
        raise CompilerNotFoundError(f"cannot run the C compiler {cc}: {e.strerror or e}; {SET_CC}") from None
    output = (proc.stderr or proc.stdout).strip()
    if proc.returncode < 0:
        try:
            name = signal.Signals(-proc.returncode).name
        except ValueError:
            name = f"signal {-proc.returncode}"
        output = f"error: the compiler was killed by {name}\n{output}"
    elif proc.returncode == 0 and not (out_path.exists() and out_path.stat().st_size > 0):
        output = f"error: the compiler reported success but wrote no library\n{output}"
    elif proc.returncode == 0:
        return
    elif not output:
        output = f"error: the compiler exited with status {proc.returncode} without a message"
    full = f"{output}\ncommand: {' '.join(cmd)}"
    raise CompileError(full, source_path, log_path=_save_log(source_path, full))
