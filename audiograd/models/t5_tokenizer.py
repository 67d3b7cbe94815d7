"""T5's tokenizer, as transformers' ``AutoTokenizer`` gives it for a local folder: the
``tokenizers`` library on tokenizer.json (transformers' fast tokenizer), or ``sentencepiece`` on
spiece.model when no tokenizer.json exists (transformers' slow ``T5Tokenizer``). Texts get the
end-of-sequence token, are truncated to ``max_length`` (the EOS kept) and padded with id 0."""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np

PAD_ID = 0
_INSTALL = "pip install 'audiograd[generate]' (tokenizers and sentencepiece)"


class T5TextTokenizer:
    """Token ids and attention masks for a batch of texts, padded to a fixed length."""

    def __init__(self, encode, eos_id: int, pad_id: int = PAD_ID, source: str = ""):
        self._encode, self.eos_id, self.pad_id, self.source = encode, eos_id, pad_id, source

    @classmethod
    def from_folder(cls, folder) -> "T5TextTokenizer":
        folder = Path(folder)
        if (folder / "tokenizer.json").is_file():
            return cls._fast(folder / "tokenizer.json")
        if (folder / "spiece.model").is_file():
            return cls._sentencepiece(folder / "spiece.model")
        raise FileNotFoundError(f"{folder}: no tokenizer.json or spiece.model (T5's tokenizer files)")

    @classmethod
    def _fast(cls, path: Path) -> "T5TextTokenizer":
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise ImportError(f"reading {path} needs the tokenizers package: {_INSTALL}") from None
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as e:  # the library's own parse errors, for a hostile or foreign file
            raise ValueError(f"{path}: not a tokenizers file ({e})") from None
        tok.no_truncation()
        tok.no_padding()
        eos = tok.token_to_id("</s>")
        if eos is None:
            raise ValueError(f"{path}: the vocabulary has no '</s>' token (is this T5's tokenizer?)")

        def encode(texts: Sequence[str]) -> List[List[int]]:
            # the post-processor of T5's tokenizer.json appends </s>
            return [e.ids for e in tok.encode_batch(list(texts))]
        return cls(encode, eos, source=str(path))

    @classmethod
    def _sentencepiece(cls, path: Path) -> "T5TextTokenizer":
        try:
            import sentencepiece
        except ImportError:
            raise ImportError(f"reading {path} needs the sentencepiece package: {_INSTALL}") from None
        sp = sentencepiece.SentencePieceProcessor()
        try:
            sp.Load(str(path))
        except Exception as e:
            raise ValueError(f"{path}: not a sentencepiece model ({e})") from None
        eos = sp.eos_id() if sp.eos_id() >= 0 else 1

        def encode(texts: Sequence[str]) -> List[List[int]]:
            return [list(sp.EncodeAsIds(t)) + [eos] for t in texts]
        return cls(encode, eos, source=str(path))

    def __call__(self, texts: Sequence[str], max_length: int) -> Tuple[np.ndarray, np.ndarray]:
        """(ids int64 (B, max_length), mask bool (B, max_length)) for ``texts``."""
        if isinstance(texts, str):
            raise TypeError("T5TextTokenizer takes a list of texts")
        if not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length must be a positive integer, got {max_length!r}")
        ids = np.full((len(texts), max_length), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(texts), max_length), dtype=bool)
        for row, seq in enumerate(self._encode([str(t) for t in texts])):
            if len(seq) > max_length:  # keep the end-of-sequence token, as transformers truncates
                seq = list(seq[:max_length - 1]) + [self.eos_id]
            ids[row, :len(seq)] = seq
            mask[row, :len(seq)] = True
        return ids, mask


def standin_backend():
    """The ``tokenizers.Tokenizer`` of :func:`standin_tokenizer` (it can be saved as tokenizer.json)."""
    try:
        from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
    except ImportError:
        raise ImportError(f"the stand-in tokenizer needs the tokenizers package: {_INSTALL}") from None
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for c in map(chr, range(32, 127)):
        vocab[c] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return tok


def standin_tokenizer() -> T5TextTokenizer:
    """A character-level tokenizer built in code (``tokenizers``' WordLevel over printable ASCII):
    for random-weight runs without T5's files. Its ids are NOT t5's."""
    tok = standin_backend()

    def encode(texts: Sequence[str]) -> List[List[int]]:
        return [e.ids for e in tok.encode_batch(list(texts))]
    return T5TextTokenizer(encode, 1, source="stand-in")


__all__ = ["T5TextTokenizer", "standin_tokenizer", "standin_backend"]
