"""The C prelude every CPU kernel starts with (math declarations, NaN-propagating max/min)."""
from pathlib import Path

PRELUDE = Path(__file__).with_name("prelude.h").read_text()
