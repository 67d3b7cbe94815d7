"""T5's tokenizer, as transformers' ``AutoTokenizer`` gives it for a local folder: the
``tokenizers`` library on tokenizer.json (transformers' fast tokenizer), or ``sentencepiece`` on
spiece.model when no tokenizer.json exists (the segmentation transformers derives from it, special
tokens written in the text included). Texts get the end-of-sequence token, are truncated to
``max_length`` (the EOS kept) and padded with ``<pad>`` (id 0 in T5).

tokenizer.json is used as written (normalizer, pre-tokenizer, model). For T5's published files
that is what transformers runs: version 4 reads the file as is, version 5 rebuilds the same
pipeline (precompiled normalizer, whitespace split then metaspace, unigram) from it."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np

PAD_ID = 0
EXTRA_IDS = 100  # T5's sentinel tokens <extra_id_0> ... <extra_id_99>
_INSTALL = "pip install 'audiograd[generate]' (tokenizers and sentencepiece)"


class T5TextTokenizer:
    """Token ids and attention masks for a batch of texts, padded to a fixed length."""

    def __init__(self, encode, eos_id: int, pad_id: int = PAD_ID, source: str = ""):
        self._encode, self.eos_id, self.pad_id, self.source = encode, eos_id, pad_id, source

    @classmethod
    def from_folder(cls, folder) -> "T5TextTokenizer":
        """The tokenizer of a local Hugging Face T5 folder: tokenizer.json when present (what
        ``AutoTokenizer`` reads first), otherwise spiece.model."""
        folder = Path(folder)
        if (folder / "tokenizer.json").is_file():
            return cls._fast(folder / "tokenizer.json")
        if (folder / "spiece.model").is_file():
            return cls._sentencepiece(folder / "spiece.model")
        raise FileNotFoundError(f"{folder}: no tokenizer.json or spiece.model (T5's tokenizer files: "
                                "provide the folder of t5-base as Hugging Face publishes it)")

    @classmethod
    def _fast(cls, path: Path) -> "T5TextTokenizer":
        try:
            from tokenizers import Tokenizer, processors
        except ImportError:
            raise ImportError(f"reading {path} needs the tokenizers package: {_INSTALL}") from None
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as e:  # the library's own parse errors, for a hostile or foreign file
            raise ValueError(f"{path}: not a tokenizers file ({e})") from None
        tok.no_truncation()
        tok.no_padding()
        eos, pad = tok.token_to_id("</s>"), tok.token_to_id("<pad>")
        if eos is None or pad is None:
            raise ValueError(f"{path}: the vocabulary has no '</s>' or no '<pad>' token (is this T5's tokenizer?)")
        # transformers' T5 tokenizer appends </s> whatever post-processor the file names
        tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", eos)])

        def encode(texts: Sequence[str]) -> List[List[int]]:
            return [e.ids for e in tok.encode_batch(list(texts))]
        return cls(encode, eos, pad_id=pad, source=str(path))

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
        size = sp.GetPieceSize()
        specials = {}
        for name in ("<pad>", "</s>", "<unk>"):
            piece = sp.PieceToId(name)
            if sp.IdToPiece(piece) != name:
                raise ValueError(f"{path}: the vocabulary has no {name!r} piece (is this T5's spiece.model?)")
            specials[name] = piece
        extra = _extra_ids(path.parent / "tokenizer_config.json")
        # transformers appends the sentinels after the pieces, the last one first
        specials.update({f"<extra_id_{i}>": size + extra - 1 - i for i in range(extra)})
        split = re.compile("(" + "|".join(map(re.escape, sorted(specials, key=len, reverse=True))) + ")")
        eos = specials["</s>"]

        def encode_one(text: str) -> List[int]:
            # special tokens written in the text are matched first, as transformers does; each
            # piece of text between them is segmented on its own
            ids = []
            for k, part in enumerate(split.split(text)):
                ids.extend([specials[part]] if k % 2 else sp.EncodeAsIds(part))
            return ids + [eos]

        def encode(texts: Sequence[str]) -> List[List[int]]:
            return [encode_one(t) for t in texts]
        return cls(encode, eos, pad_id=specials["<pad>"], source=str(path))

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


def _extra_ids(config: Path) -> int:
    """The sentinel count of a tokenizer_config.json beside spiece.model (T5's 100 without one)."""
    if not config.is_file():
        return EXTRA_IDS
    try:
        value = json.loads(config.read_bytes().decode("utf-8")).get("extra_ids", EXTRA_IDS)
    except (ValueError, UnicodeDecodeError, AttributeError, RecursionError):
        raise ValueError(f"{config}: not a JSON object") from None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10000:
        raise ValueError(f"{config}: extra_ids must be an integer from 0 to 10000, got {value!r}")
    return value


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
    for random-weight runs without T5's files. Its ids are NOT t5's, and transformers 5 cannot
    load its tokenizer.json as a T5 tokenizer (it expects a unigram vocabulary)."""
    tok = standin_backend()

    def encode(texts: Sequence[str]) -> List[List[int]]:
        return [e.ids for e in tok.encode_batch(list(texts))]
    return T5TextTokenizer(encode, 1, source="stand-in")


__all__ = ["T5TextTokenizer", "standin_tokenizer", "standin_backend"]
