"""Stable Audio's prompt conditioner (stable-audio-tools' ``T5Conditioner``): tokenize to a fixed
length, encode with T5, project when the widths differ, zero the padded positions."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

from .. import nn
from ..tensor.tensor import Tensor
from .t5 import T5_BASE, T5Encoder, seeded_t5
from .t5_tokenizer import T5TextTokenizer, standin_tokenizer


class TextConditioner:
    """texts -> (embeddings (B, max_length, output_dim), mask (B, max_length) bool).

    T5 is not part of a Stable Audio checkpoint (it comes from its own folder) and is not
    trained with it, so it is a plain attribute here, outside any state dict, as in
    stable-audio-tools; only ``proj_out`` (a Linear when T5's width differs from the
    conditioning width) belongs to the checkpoint."""

    def __init__(self, tokenizer: T5TextTokenizer, encoder: T5Encoder, output_dim: int, max_length: int):
        self.tokenizer, self.encoder, self.max_length = tokenizer, encoder, max_length
        width = encoder.cfg["d_model"]
        self.proj_out: Optional[nn.Linear] = nn.Linear(width, output_dim) if width != output_dim else None

    @classmethod
    def from_folder(cls, folder, output_dim: int, max_length: int, half_weights: bool = True) -> "TextConditioner":
        """T5 and its tokenizer from a local Hugging Face folder. ``half_weights``: stable-audio-tools
        casts T5's weights to float16 when it loads them; the weights are rounded the same way
        here, while the arithmetic stays float32 (its float16 arithmetic, and the clamping
        transformers applies to float16 activations near overflow, are not reproduced)."""
        return cls(T5TextTokenizer.from_folder(folder), T5Encoder.from_pretrained(folder, half_weights=half_weights),
                   output_dim, max_length)

    @classmethod
    def random(cls, output_dim: int, max_length: int, seed: int = 0) -> "TextConditioner":
        """t5-base's shapes with seeded random weights and a character-level stand-in tokenizer
        (its token ids are not t5's: for runs without T5's files)."""
        config = dict(T5_BASE, vocab_size=128)
        return cls(standin_tokenizer(), seeded_t5(config, seed), output_dim, max_length)

    def to(self, *args, **kwargs) -> "TextConditioner":
        """Move or cast T5 and the projection (``Module.to``'s arguments)."""
        self.encoder = self.encoder.to(*args, **kwargs)
        if self.proj_out is not None:
            self.proj_out.to(*args, **kwargs)
        return self

    def encode(self, texts: Sequence[str]) -> Tuple[Tensor, Tensor]:
        """(embeddings (B, max_length, output_dim) float, mask (B, max_length) bool) for
        ``texts``; padded positions are zero, as stable-audio-tools multiplies by the mask."""
        if isinstance(texts, str):
            raise TypeError("TextConditioner takes a list of texts, not one string")
        ids, mask = self.tokenizer(list(texts), self.max_length)
        emb = self.encoder(ids, mask)
        if self.proj_out is not None:
            emb = self.proj_out(emb)
        keep = Tensor(mask.astype(emb.dtype.np), device=emb.device)
        return emb * keep.unsqueeze(-1), Tensor(mask, device=emb.device)

    __call__ = encode


__all__ = ["TextConditioner"]
