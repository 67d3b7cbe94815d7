"""T5 tokenization against transformers' tokenizers, for a sentencepiece model trained here (T5's
own files are a download; the tokenization rules are the same for any sentencepiece model)."""
from __future__ import annotations

import numpy as np
import pytest

from audiograd.models.t5_tokenizer import T5TextTokenizer, standin_tokenizer

spm = pytest.importorskip("sentencepiece", reason="sentencepiece trains the test vocabulary")
transformers = pytest.importorskip("transformers", reason="transformers' T5 tokenizers are the reference")

PROMPTS = ["warm arpeggios on house beats 120BPM with drums effect",
           "Ambient pad, slow attack; reverb & delay!!! (take 2)",
           "128 BPM, 3.5 seconds, 44.1kHz -- 24-bit",
           "café crème à la française, naïve coöperation",
           "雨の音 and 🎹 piano ✨",
           "  leading   and trailing   spaces  ",
           "",
           " ".join(["a very long prompt that will be truncated"] * 20)]

CORPUS = ["the quick brown fox jumps over the lazy dog", "warm pads and deep bass with a steady kick drum",
          "field recording of rain on a tin roof at night", "solo piano in a small room, soft and intimate",
          "120 BPM house groove with claps and hats", "orchestral swell with strings and brass, 3.5 seconds",
          "café ambience, people talking, cups clinking", "glitchy synth arpeggio, 44.1 kHz, stereo"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Two folders for the same trained model: tokenizer.json (+ spiece.model), spiece.model only."""
    root = tmp_path_factory.mktemp("t5tok")
    lines = [f"{s} {i}" for i in range(60) for s in CORPUS]
    (root / "corpus.txt").write_text("\n".join(lines))
    spm.SentencePieceTrainer.train(input=str(root / "corpus.txt"), model_prefix=str(root / "sp"), vocab_size=100, hard_vocab_limit=False,
                                   model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                   character_coverage=1.0, minloglevel=2)
    only_sp = root / "slow"
    only_sp.mkdir()
    (only_sp / "spiece.model").write_bytes((root / "sp.model").read_bytes())
    fast = transformers.T5Tokenizer.from_pretrained(only_sp)
    with_json = root / "fast"
    fast.save_pretrained(with_json)
    return {"fast": with_json, "slow": only_sp, "reference": fast}


@pytest.mark.parametrize("max_length", [64, 12])
def test_tokenizer_json_matches_autotokenizer(folders, max_length):
    ref = transformers.AutoTokenizer.from_pretrained(folders["fast"])
    want = ref(PROMPTS, truncation=True, max_length=max_length, padding="max_length")
    ids, mask = T5TextTokenizer.from_folder(folders["fast"])(PROMPTS, max_length)
    np.testing.assert_array_equal(ids, np.array(want["input_ids"]))
    np.testing.assert_array_equal(mask, np.array(want["attention_mask"], dtype=bool))
    assert ids[-1, -1] == 1  # a truncated prompt still ends with </s>
    assert (ids[mask] == 2).mean() < 0.1  # real pieces, not a vocabulary of unknowns


def test_spiece_only_matches_autotokenizer(folders):
    ref = folders["reference"]  # transformers' T5 tokenizer made from the same spiece.model
    want = ref(PROMPTS, truncation=True, max_length=40, padding="max_length")
    ids, mask = T5TextTokenizer.from_folder(folders["slow"])(PROMPTS, 40)
    np.testing.assert_array_equal(ids, np.array(want["input_ids"]))
    np.testing.assert_array_equal(mask, np.array(want["attention_mask"], dtype=bool))


def test_missing_and_hostile_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer.json or spiece.model"):
        T5TextTokenizer.from_folder(tmp_path)
    (tmp_path / "tokenizer.json").write_bytes(b"\x00\xffnot json")
    with pytest.raises(ValueError, match="not a tokenizers file"):
        T5TextTokenizer.from_folder(tmp_path)
    (tmp_path / "tokenizer.json").unlink()
    (tmp_path / "spiece.model").write_bytes(b"garbage" * 10)
    with pytest.raises(ValueError, match="not a sentencepiece model"):
        T5TextTokenizer.from_folder(tmp_path)


def test_standin_tokenizer_pads_and_ends():
    ids, mask = standin_tokenizer()(["ab", ""], 5)
    assert ids.shape == (2, 5) and ids[0, 2] == 1 and ids[1, 0] == 1
    assert mask.sum(1).tolist() == [3, 1]
