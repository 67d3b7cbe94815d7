"""Training utilities on top of nn and optim: checkpoints."""
from .checkpoint import load_checkpoint, save_checkpoint
