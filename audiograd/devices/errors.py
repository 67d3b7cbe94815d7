"""Errors of building kernels, shared by every device."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

SET_CC = "set CC (or audiograd.config.cc) to a working C compiler, or install gcc"


class CompilerNotFoundError(RuntimeError):
    """No C compiler could be found or started."""


class CompileError(RuntimeError):
    """The compiler rejected a generated kernel; carries its output and the source path.

    ``summary`` is one line (the first line of the output that names an error, and where the
    whole output is); ``str()`` is that line followed by the full output.
    """

    def __init__(self, message: str, source_path: Path, tool: str = "C compiler",
                 log_path: Optional[Path] = None, hint: str = SET_CC):
        self.source_path, self.compiler_output, self.tool = source_path, message, tool
        self.log_path, self.hint = log_path, hint
        super().__init__(f"{self.summary}\n{message}")

    @property
    def summary(self) -> str:
        lines = [line.strip() for line in self.compiler_output.splitlines() if line.strip()]
        first = next((line for line in lines if "error" in line.lower()), lines[0] if lines else "no output")
        if len(first) > 200:
            first = first[:197] + "..."
        where = f"full output in {self.log_path}" if self.log_path else f"source in {self.source_path}"
        hint = f"; {self.hint}" if self.hint else ""
        return f"{self.tool} failed on generated kernel {self.source_path}: {first} ({where}){hint}"
