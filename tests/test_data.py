"""The corpus, its checksum, the tokenizer, the split, and the batches."""
from __future__ import annotations

import hashlib
import shutil

import pytest
import torch

import common.corpus as data_mod
from common.corpus import CORPUS_SHA256, DATA_ENV, locate_corpus, read_corpus, verify_checksum
from common.data import CharTokenizer, check_block_size, get_batch, load_dataset, make_dataset
from common.errors import LadderError

CORPUS_CHARS = 1_115_394
N_TRAIN = 1_003_854  # int(0.9 * CORPUS_CHARS)
N_VAL = CORPUS_CHARS - N_TRAIN  # 111,540


# ----------------------------------------------------------------------------------------------
# the corpus and the split


def test_corpus_is_tiny_shakespeare(corpus_path, corpus_text):
    assert len(corpus_text) == CORPUS_CHARS
    assert len(set(corpus_text)) == 65
    assert hashlib.sha256(corpus_path.read_bytes()).hexdigest() == CORPUS_SHA256
    verify_checksum(corpus_path)  # does not raise on the genuine file
    assert corpus_text.startswith("First Citizen:\n")


def test_read_corpus_reads_the_explicit_path(corpus_path, corpus_text):
    assert read_corpus(corpus_path) == corpus_text
    assert locate_corpus(corpus_path) == corpus_path


def test_split_is_first_90_percent_then_last_10(dataset, corpus_text):
    assert dataset.tokenizer.vocab_size == 65
    assert len(dataset.train) == N_TRAIN
    assert len(dataset.val) == N_VAL
    assert dataset.train.dtype == torch.long and dataset.val.dtype == torch.long
    assert dataset.split("train") is dataset.train
    assert dataset.split("val") is dataset.val
    # the split is in order: train is the beginning of the text, val the end
    tok = dataset.tokenizer
    assert tok.decode(dataset.train[:100].tolist()) == corpus_text[:100]
    assert tok.decode(dataset.val[-100:].tolist()) == corpus_text[-100:]
    assert tok.decode(dataset.val[:50].tolist()) == corpus_text[N_TRAIN:N_TRAIN + 50]


def test_tokenizer_round_trip_of_the_whole_corpus(dataset, corpus_text):
    tok = dataset.tokenizer
    assert tok.decode(dataset.train.tolist()) + tok.decode(dataset.val.tolist()) == corpus_text
    assert tok.decode(tok.encode("hii there")) == "hii there"
    assert tok.encode("") == []


def test_tokenizer_ids_are_sorted_characters(dataset):
    tok = dataset.tokenizer
    assert list(tok.chars) == sorted(tok.chars)
    assert tok.encode("\n") == [0]
    assert tok.encode(" !") == [1, 2]
    assert tok.encode("a") == [tok.chars.index("a")]
    assert tok.stoi == {ch: i for i, ch in enumerate(tok.chars)}


@pytest.mark.parametrize("char", ["é", "\t", "{", "\u2603"], ids=["e-acute", "tab", "brace", "snowman"])
def test_encoding_unknown_character_names_it(dataset, char):
    with pytest.raises(LadderError) as info:
        dataset.tokenizer.encode(f"Good {char}morrow")
    assert repr(char) in str(info.value)


def test_char_tokenizer_rejects_duplicates():
    with pytest.raises(ValueError, match="distinct"):
        CharTokenizer("abca")
    with pytest.raises(ValueError):
        CharTokenizer(["x", "y", "x"])
    assert CharTokenizer("abc").vocab_size == 3


def test_make_dataset_on_a_small_text():
    ds = make_dataset("abcdefghij" * 3)  # 30 characters
    assert ds.tokenizer.chars == "abcdefghij"
    assert len(ds.train) == 27 and len(ds.val) == 3
    assert ds.tokenizer.decode(torch.cat([ds.train, ds.val]).tolist()) == "abcdefghij" * 3


# ----------------------------------------------------------------------------------------------
# batches


def test_get_batch_shapes_and_shift(dataset):
    g = torch.Generator().manual_seed(0)
    x, y = get_batch(dataset.train, 8, 16, g)
    assert x.shape == (16, 8) and y.shape == (16, 8)
    assert x.dtype == torch.long and y.dtype == torch.long
    assert torch.equal(y[:, :-1], x[:, 1:])


def test_get_batch_windows_are_real_slices():
    """With data = 100, 101, ..., a window's values give its position in the data."""
    T = 5
    data = torch.arange(100, 120)  # 20 tokens
    g = torch.Generator().manual_seed(1)
    x, y = get_batch(data, T, 2000, g)
    starts = x[:, 0] - 100
    steps = torch.arange(T)
    assert torch.equal(x, data[starts[:, None] + steps])  # consecutive tokens of the data
    assert torch.equal(y, x + 1)  # the targets are the next tokens
    # every window fits, and every start position, the last one included, is drawn
    assert sorted(set(starts.tolist())) == list(range(len(data) - T))


def test_get_batch_windows_of_the_corpus_are_slices(dataset):
    g = torch.Generator().manual_seed(2)
    val = dataset.val
    x, y = get_batch(val, 32, 4, g)
    text = dataset.tokenizer.decode(val.tolist())
    for row_x, row_y in zip(x, y):
        window = dataset.tokenizer.decode(row_x.tolist() + row_y[-1:].tolist())
        assert window in text


def test_get_batch_is_reproducible_with_a_seeded_generator(dataset):
    a = get_batch(dataset.train, 8, 4, torch.Generator().manual_seed(7))
    b = get_batch(dataset.train, 8, 4, torch.Generator().manual_seed(7))
    c = get_batch(dataset.train, 8, 4, torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_get_batch_with_the_largest_block_size():
    data = torch.arange(10)
    x, y = get_batch(data, 9, 3, torch.Generator().manual_seed(0))  # only one window fits
    assert torch.equal(x, torch.arange(9).expand(3, 9))
    assert torch.equal(y, torch.arange(1, 10).expand(3, 9))


# ----------------------------------------------------------------------------------------------
# the checksum and locating the corpus


def test_verify_checksum_rejects_a_wrong_file(tmp_path):
    bad = tmp_path / "tinyshakespeare.txt"
    bad.write_text("To be, or not to be: that is not the corpus.\n")
    with pytest.raises(LadderError) as info:
        verify_checksum(bad)
    assert str(bad) in str(info.value)
    verify_checksum(bad, expected=hashlib.sha256(bad.read_bytes()).hexdigest())  # its own digest passes


def _no_download(*args, **kwargs):
    raise AssertionError("the tests must not download the corpus")


def test_locate_corpus_rejects_a_corrupted_cache(tmp_path, monkeypatch):
    bad = tmp_path / "data" / "tinyshakespeare.txt"
    bad.parent.mkdir()
    bad.write_text("First Citizen:\nBefore we proceed any further, hear me speak.\n")
    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.setattr(data_mod, "CACHE_PATH", bad)
    monkeypatch.setattr(data_mod, "download", _no_download)
    with pytest.raises(LadderError) as info:
        locate_corpus()
    assert str(bad) in str(info.value)
    with pytest.raises(LadderError):
        read_corpus()


def test_locate_corpus_uses_a_valid_cache(tmp_path, monkeypatch, corpus_path):
    good = tmp_path / "tinyshakespeare.txt"
    shutil.copyfile(corpus_path, good)
    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.setattr(data_mod, "CACHE_PATH", good)
    monkeypatch.setattr(data_mod, "download", _no_download)
    assert locate_corpus() == good


def test_locate_corpus_without_cache_or_network(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.setattr(data_mod, "CACHE_PATH", tmp_path / "missing.txt")
    monkeypatch.setattr(data_mod, "download", _no_download)
    with pytest.raises(LadderError, match="no corpus"):
        locate_corpus(download_if_missing=False)


def test_environment_variable_names_the_corpus(tmp_path, monkeypatch):
    text = tmp_path / "tiny.txt"
    text.write_text("hello world\n")
    monkeypatch.setenv(DATA_ENV, str(text))
    monkeypatch.setattr(data_mod, "download", _no_download)
    assert locate_corpus() == text
    assert read_corpus() == "hello world\n"
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "nope.txt"))
    with pytest.raises(LadderError, match="does not exist"):
        locate_corpus()


# ----------------------------------------------------------------------------------------------
# unreadable corpora


def _empty(tmp_path):
    p = tmp_path / "empty.txt"
    p.write_bytes(b"")
    return p


def _blank(tmp_path):
    p = tmp_path / "blank.txt"
    p.write_bytes(b" \n\n\t \n")
    return p


def _directory(tmp_path):
    p = tmp_path / "a_directory"
    p.mkdir()
    return p


def _latin1(tmp_path):
    p = tmp_path / "latin1.txt"
    p.write_bytes("Ros\u00e9 and caf\u00e9\n".encode("latin-1"))
    return p


def _missing(tmp_path):
    return tmp_path / "does" / "not" / "exist.txt"


def _utf16(tmp_path):  # without a byte-order mark every byte is valid UTF-8: NULs between the characters
    p = tmp_path / "utf16.txt"
    p.write_bytes("ROMEO:\nBut soft!\n".encode("utf-16-le"))
    return p


@pytest.mark.parametrize("make, words", [
    (_empty, "empty"), (_blank, "empty"), (_directory, "directory"), (_latin1, "UTF-8"), (_missing, "does not exist"),
    (_utf16, "looks like UTF-16"),
], ids=["empty", "whitespace-only", "directory", "non-utf8", "nonexistent", "utf16"])
def test_read_corpus_errors(tmp_path, make, words):
    path = make(tmp_path)
    with pytest.raises(LadderError) as info:
        read_corpus(path)
    message = str(info.value)
    assert words in message
    assert str(path) in message
    with pytest.raises(LadderError):
        load_dataset(path)


# ----------------------------------------------------------------------------------------------
# block size


@pytest.mark.parametrize("block_size", [0, -1, -8], ids=["zero", "minus1", "minus8"])
def test_check_block_size_rejects_non_positive(dataset, block_size):
    with pytest.raises(LadderError, match="positive"):
        check_block_size(dataset, block_size)


def test_check_block_size_against_the_val_split(dataset):
    n_val = len(dataset.val)
    check_block_size(dataset, 1)
    check_block_size(dataset, 256)
    check_block_size(dataset, n_val - 1)  # one window of n_val tokens fits exactly
    with pytest.raises(LadderError, match="too large"):
        check_block_size(dataset, n_val)
    with pytest.raises(LadderError, match="too large"):
        check_block_size(dataset, len(dataset.train) + 5)


# -- the training-size setting (train_chars) and the whole-split evaluation --------------------------

def test_train_chars_limits_training_text_and_leaves_validation_identical(dataset):
    from common.data import check_train_chars
    small = dataset.with_train_chars(50_000)
    assert len(small.train) == 50_000 and torch.equal(small.train, dataset.train[:50_000])
    assert torch.equal(small.val, dataset.val)  # every point of a sweep is scored on the same text
    assert dataset.with_train_chars(0) is dataset  # 0: the whole training split
    with pytest.raises(LadderError, match="more than the training split holds"):
        check_train_chars(dataset, len(dataset.train) + 1, 32)
    with pytest.raises(LadderError, match="too small for block_size 32"):
        check_train_chars(dataset, 32, 32)
    check_train_chars(dataset, 33, 32)  # one window of block_size + 1 fits


def test_training_draws_batches_only_from_the_first_train_chars():
    from torch import nn

    from common.config import TrainConfig
    from common.train import train

    class Recorder(nn.Module):  # honours the stage contract; remembers the tokens it trained on
        def __init__(self, vocab_size):
            super().__init__()
            self.config = type("Config", (), {"block_size": 4})()
            self.logits = nn.Embedding(vocab_size, vocab_size)
            self.seen = set()

        def forward(self, idx, targets=None):
            if self.training:
                self.seen.update(idx.flatten().tolist())
                self.seen.update(targets.flatten().tolist())
            logits = self.logits(idx)
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
            return logits, loss

    text = "ab" * 500 + "cd" * 400 + "abcd" * 50  # the training split (90%) holds "cd" after its first 1,000
    ds = make_dataset(text)
    model = Recorder(ds.tokenizer.vocab_size)
    train(model, ds, TrainConfig(batch_size=8, max_iters=200, eval_interval=100, eval_iters=2, train_chars=1000),
          progress=False)
    assert model.seen == set(ds.tokenizer.encode("ab"))  # never a "c" or "d": they start at character 1,000
    model = Recorder(ds.tokenizer.vocab_size)
    train(model, ds, TrainConfig(batch_size=8, max_iters=200, eval_interval=100, eval_iters=2), progress=False)
    assert model.seen == set(ds.tokenizer.encode("abcd"))  # without the setting, the whole split


def test_the_final_evaluation_scores_the_whole_validation_split_exactly():
    from common.config import TrainConfig
    from common.train import split_loss, train
    from stages import STAGES

    ds = make_dataset("to be, or not to be: that is the question. " * 40)
    torch.manual_seed(0)
    model = STAGES["bigram"].Model(STAGES["bigram"].Config(vocab_size=ds.tokenizer.vocab_size, block_size=8))
    T, n = 8, (len(ds.val) - 1) // 8
    with torch.no_grad():  # by hand: every full window of the split, one at a time
        by_hand = sum(model(ds.val[i * T:(i + 1) * T][None], ds.val[i * T + 1:(i + 1) * T + 1][None])[1].item()
                      for i in range(n)) / n
    assert split_loss(model, ds.val, T, batch_size=3) == pytest.approx(by_hand, abs=1e-6)
    result = train(model, ds, TrainConfig(batch_size=4, max_iters=10, eval_interval=5, eval_iters=2),
                   progress=False)
    assert result.final["val_loss"] == pytest.approx(split_loss(model, ds.val, T, 4), abs=1e-6)
