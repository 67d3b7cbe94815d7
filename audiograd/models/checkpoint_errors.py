"""The one error type every checkpoint reader raises for a file it cannot trust."""
from __future__ import annotations


class CheckpointError(ValueError):
    """A file that is not a readable checkpoint (truncated, foreign, inconsistent or unsafe)."""
