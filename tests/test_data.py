"""Vocabulary, records, encoding, the train/val split and the track batching."""

import numpy as np
import pytest

from charrnn.config import DataConfig
from charrnn.data import encode_records, load_corpus, make_tracks, split_records, split_train_val, window
from charrnn.errors import ConfigError, DataError
from charrnn.vocab import BOS, EOS, Vocab


@pytest.mark.parametrize("text", ["", "a", "hello", "naïve café ☕ 𝄞 שלום\r\n\x00end"])
def test_vocab_round_trips(text):
    vocab = Vocab.from_texts([text])
    assert vocab.chars == sorted(set(text))
    assert vocab.decode(vocab.encode(text)) == text
    assert Vocab.from_json(vocab.to_json()).chars == vocab.chars


def test_ids_start_after_the_specials_and_stay_small():
    vocab = Vocab.from_texts(["cab"])
    assert vocab.encode("abc").tolist() == [2, 3, 4]
    assert vocab.id_dtype == np.uint8
    assert Vocab.from_texts(["".join(map(chr, range(0x4E00, 0x4E00 + 300)))]).id_dtype == np.uint16


def test_records_are_wrapped_in_start_and_end():
    vocab = Vocab.from_texts(["ab"])
    ids = encode_records(["ab", "b"], vocab)
    assert ids.tolist() == [BOS, 2, 3, EOS, BOS, 3, EOS]


def test_record_modes():
    text = "ann\nbob\n\ncy\n"
    assert split_records(text, "file") == [text]
    assert split_records(text, "line") == ["ann", "bob", "cy"]
    assert split_records(text, "paragraph") == ["ann\nbob", "cy"]


def test_validation_split_keeps_records_whole():
    vocab = Vocab.from_texts(["abcdefghij"])
    ids = encode_records(list("abcdefghij"), vocab)  # ten records of 3 ids
    train, val = split_train_val(ids, 0.2)
    assert len(train) + len(val) == len(ids)
    assert val[0] == BOS and len(val) == 6
    train, val = split_train_val(ids, 0.0)
    assert len(val) == 0


def test_tracks_and_windows():
    ids = np.arange(23)
    tracks = make_tracks(ids, 2, 4)  # (2, 11), the last id dropped
    assert tracks.shape == (2, 11)
    x, y = window(tracks, 1, 4)
    assert x.T.tolist() == [[4, 5, 6, 7], [15, 16, 17, 18]]
    assert y.T.tolist() == [[5, 6, 7, 8], [16, 17, 18, 19]]
    with pytest.raises(ConfigError, match="train.batch_size"):
        make_tracks(ids, 5, 4)


def test_corpus_errors(tmp_path):
    with pytest.raises(DataError, match="data file not found"):
        load_corpus(DataConfig(path=str(tmp_path / "missing.txt")))
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(DataError, match="no text to train on"):
        load_corpus(DataConfig(path=str(tmp_path / "empty.txt"), records="line"))
    (tmp_path / "bad.txt").write_bytes(b"abc\xffdef")
    with pytest.raises(DataError, match=r"byte 3 \(0xff\) is not valid utf-8"):
        load_corpus(DataConfig(path=str(tmp_path / "bad.txt")))
    corpus = load_corpus(DataConfig(path=str(tmp_path / "bad.txt"), errors="replace", val_fraction=0))
    assert "\ufffd" in corpus.vocab.chars
