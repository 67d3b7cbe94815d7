"""T5 tokenization against transformers' ``AutoTokenizer`` for a sentencepiece model trained here
(T5's own files are a download; transformers derives its T5 tokenizer from any spiece.model by
the same rules): a folder with tokenizer.json, and one with spiece.model only."""
from __future__ import annotations

import json
import random
import sys

import numpy as np
import pytest

from audiograd.models.t5_tokenizer import T5TextTokenizer, standin_tokenizer

spm = pytest.importorskip("sentencepiece", reason="sentencepiece trains the test vocabulary")
pytest.importorskip("tokenizers", reason="the tokenizers library reads tokenizer.json")
transformers = pytest.importorskip("transformers", reason="transformers' T5 tokenizer is the reference")

PROMPTS = [
    "warm arpeggios on house beats 120BPM with drums effect",
    "Ambient pad, slow attack; reverb & delay!!! (take 2) -- \"quoted\" 'single' [brackets] {braces}",
    "120 BPM, 3.5 seconds, 44.1kHz, 24-bit, -6 dB, 1/4 note, 100%",
    "café crème à la française, naïve coöperation, Ñandú, Øresund, straße",
    "雨の音 and 🎹 piano ✨ 😀😀 中文 한국어 Ω ω ½ ² ™",
    "  leading   and trailing   spaces  ",
    "tab\there\nnew line\r\n  x\u00a0no-break\u2003em\u3000ideographic",
    "fullwidth ＡＢＣ１２３ and the ﬁ ligature",
    "special </s> in <extra_id_0> text <pad> <unk>, x</s>y <extra_id_99><extra_id_100>",
    "",
    " ",
    "...",
    "don't stop ▁ underscore_word",
    " ".join(["a very long prompt that will be truncated"] * 20),
]


def _corpus(lines: int = 400, seed: int = 0):
    """Generated text with enough distinct words for a unigram vocabulary of 800 pieces."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyzéèàüöñç"
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(1200)]
    words += ("the a of and with warm deep bass drum piano synth pad beat BPM kHz seconds ambient rain "
              "house kick reverb delay slow attack café 雨 の 音 🎹").split()
    tails = [".", ",", "!", "", " 120 BPM", " 3.5", " (take 2)", "; 44.1 kHz"]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(4, 14))) + rng.choice(tails) for _ in range(lines)]


@pytest.fixture(scope="session")
def folders(tmp_path_factory):
    """A trained spiece.model in a folder as Hugging Face lays one out (config.json beside it),
    and the folder transformers' tokenizer saves from it (tokenizer.json)."""
    root = tmp_path_factory.mktemp("t5tok")
    (root / "corpus.txt").write_text("\n".join(_corpus()), encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(root / "corpus.txt"), model_prefix=str(root / "sp"), vocab_size=800,
                                   model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                   character_coverage=0.9995, minloglevel=2)
    slow = root / "spiece_only"
    slow.mkdir()
    (slow / "spiece.model").write_bytes((root / "sp.model").read_bytes())
    (slow / "config.json").write_text(json.dumps({"model_type": "t5"}))
    fast = root / "with_json"
    transformers.AutoTokenizer.from_pretrained(slow).save_pretrained(fast)
    assert (fast / "tokenizer.json").is_file()
    return {"fast": fast, "slow": slow}


def _compare(folder, max_length: int):
    ref = transformers.AutoTokenizer.from_pretrained(folder)
    want = ref(PROMPTS, truncation=True, max_length=max_length, padding="max_length")
    ids, mask = T5TextTokenizer.from_folder(folder)(PROMPTS, max_length)
    assert ids.dtype == np.int64 and mask.dtype == np.bool_ and ids.shape == mask.shape == (len(PROMPTS), max_length)
    for row, prompt in enumerate(PROMPTS):
        assert ids[row].tolist() == want["input_ids"][row], prompt
    np.testing.assert_array_equal(mask, np.array(want["attention_mask"], dtype=bool))
    return ids, mask


@pytest.mark.parametrize("kind", ["fast", "slow"], ids=["tokenizer.json", "spiece.model only"])
@pytest.mark.parametrize("max_length", [128, 64, 12])
def test_ids_and_masks_match_autotokenizer(folders, kind, max_length):
    ids, mask = _compare(folders[kind], max_length)
    assert ids[-1, -1] == 1 and mask[-1].all()  # a truncated prompt still ends with </s>
    assert ids[PROMPTS.index("")].tolist()[:2] == [1, 0]  # an empty prompt is </s> then padding
    assert (ids[mask] == 2).mean() < 0.1  # real pieces, not a vocabulary of unknowns
    assert (ids[:, :4] == 2).any()  # and some characters outside the vocabulary


def test_both_folders_agree(folders):
    fast = T5TextTokenizer.from_folder(folders["fast"])(PROMPTS, 64)
    slow = T5TextTokenizer.from_folder(folders["slow"])(PROMPTS, 64)
    np.testing.assert_array_equal(fast[0], slow[0])


def test_missing_and_hostile_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer.json or spiece.model"):
        T5TextTokenizer.from_folder(tmp_path)
    (tmp_path / "tokenizer.json").write_bytes(b"\x00\xffnot json")
    with pytest.raises(ValueError, match="tokenizer.json: not a tokenizers file"):
        T5TextTokenizer.from_folder(tmp_path)
    (tmp_path / "tokenizer.json").unlink()
    (tmp_path / "spiece.model").write_bytes(b"garbage" * 10)
    with pytest.raises(ValueError, match="spiece.model: not a sentencepiece model"):
        T5TextTokenizer.from_folder(tmp_path)


def test_hostile_tokenizer_config_beside_spiece(folders, tmp_path):
    (tmp_path / "spiece.model").write_bytes((folders["slow"] / "spiece.model").read_bytes())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"extra_ids": "many"}))
    with pytest.raises(ValueError, match="tokenizer_config.json: extra_ids must be an integer"):
        T5TextTokenizer.from_folder(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text("[1]")
    with pytest.raises(ValueError, match="tokenizer_config.json: not a JSON object"):
        T5TextTokenizer.from_folder(tmp_path)


def test_tokenizer_json_without_t5_tokens(tmp_path):
    from tokenizers import Tokenizer, models
    Tokenizer(models.WordLevel({"a": 0, "<unk>": 1}, unk_token="<unk>")).save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(ValueError, match="no '</s>' or no '<pad>' token"):
        T5TextTokenizer.from_folder(tmp_path)


@pytest.mark.parametrize("package,file", [("tokenizers", "tokenizer.json"), ("sentencepiece", "spiece.model")])
def test_missing_package_says_what_to_install(folders, tmp_path, monkeypatch, package, file):
    source = folders["fast"] if file == "tokenizer.json" else folders["slow"]
    (tmp_path / file).write_bytes((source / file).read_bytes())
    monkeypatch.setitem(sys.modules, package, None)  # its import now fails
    with pytest.raises(ImportError, match=f"needs the {package} package: pip install"):
        T5TextTokenizer.from_folder(tmp_path)


def test_bad_arguments(folders):
    tok = T5TextTokenizer.from_folder(folders["fast"])
    with pytest.raises(TypeError, match="list of texts"):
        tok("one string", 8)
    with pytest.raises(ValueError, match="max_length must be a positive integer"):
        tok(["x"], 0)


def test_standin_tokenizer_pads_and_ends():
    ids, mask = standin_tokenizer()(["ab", "", "abcdefgh"], 5)  # printable ASCII from id 3: "a" is 68
    assert ids.tolist() == [[68, 69, 1, 0, 0], [1, 0, 0, 0, 0], [68, 69, 70, 71, 1]]
    assert mask.sum(1).tolist() == [3, 1, 5]
