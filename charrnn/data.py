"""Text to id streams: read, split into records, encode `<s> c1 … cn </s>`, split train/val, batch."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import DataConfig
from .errors import ConfigError, DataError
from .vocab import BOS, EOS, Vocab

_BLANK_LINES = re.compile(r"\r?\n(?:[ \t]*\r?\n)+")
_GROUP = 1 << 20  # characters of short records encoded in one call
_SURROGATE = re.compile("[\ud800-\udfff]")


DATA_PATH_HINT = "put the text there, or point data.path at it (--set data.path=FILE)"


def read_text(path: str | Path, encoding: str = "utf-8", errors: str = "strict", hint: str | None = None) -> str:
    """The file's text, exactly: no newline translation, so CRLF stays CRLF.

    hint: what to do when the file is missing, when the path came from a config (DATA_PATH_HINT).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if hint is None:
            raise DataError(f"{path}: no such file") from None
        raise DataError(f"{path}: data file not found; {hint}") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a text file") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read: {err.strerror}") from None
    return decode_text(raw, str(path), encoding, errors)


def decode_text(raw: bytes, source: str, encoding: str = "utf-8", errors: str = "strict") -> str:
    """Bytes read from `source` (a file name, or <stdin>) as text; a bad byte is a DataError naming it."""
    try:
        text = raw.decode(encoding, errors)
    except LookupError:
        raise ConfigError(f"{source}: data.encoding: unknown encoding {encoding!r}") from None
    except UnicodeDecodeError as err:
        raise DataError(
            f"{source}: byte {err.start} (0x{raw[err.start]:02x}) is not valid {encoding}: "
            "set data.encoding to the file's encoding, or data.errors: replace"
        ) from None
    lone = _SURROGATE.search(text)
    if lone:  # only escape codecs make them, and no text can be written back with one
        raise DataError(
            f"{source}: character {lone.start()} decodes to a lone surrogate "
            f"U+{ord(lone.group()):04X}; check data.encoding ({encoding})"
        )
    return text


def split_records(text: str, mode: str) -> list[str]:
    """Cut a text into records; empty records are dropped.

    >>> split_records("ann\\r\\nbob\\n\\n", "line")
    ['ann', 'bob']
    >>> split_records("a\\nb\\n\\n\\nc\\n", "paragraph")
    ['a\\nb', 'c']
    """
    if mode == "file":
        pieces = [text]
    elif mode == "paragraph":
        pieces = [p.strip("\r\n") for p in _BLANK_LINES.split(text)]
    elif mode == "line":
        pieces = [line.removesuffix("\r") for line in text.split("\n")]
    else:
        raise ValueError(f"unknown records mode {mode!r}")
    return [p for p in pieces if p]


def encode_records(records: list[str], vocab: Vocab) -> np.ndarray:
    """One id stream: each record as `<s> ids </s>`, back to back.

    Short records are encoded a group of about 1M characters at a time, long ones in place, so the
    cost is per character, not per record, and no second copy of the stream is ever made.
    """
    lengths = np.fromiter(map(len, records), np.int64, len(records))  # (R,)
    ends = np.cumsum(lengths + 2)  # (R,) one past each record's </s>
    starts = ends - lengths - 2  # (R,) each record's <s>
    ids = np.empty(
        int(ends[-1]) if len(records) else 0, dtype=vocab.id_dtype
    )  # (N,) one or two bytes per character, never one-hot
    ids[starts] = BOS
    ids[ends - 1] = EOS
    big = lengths >= _GROUP
    group = np.cumsum(lengths) // _GROUP  # (R,) which ~1M-character bucket each record ends in
    first = np.ones(len(records), bool)  # (R,) records that open a group: new bucket, or a big one on either side
    first[1:] = (group[1:] != group[:-1]) | big[1:] | big[:-1]
    firsts = np.flatnonzero(first).tolist()
    for i, j in zip(firsts, firsts[1:] + [len(records)]):
        if j - i == 1:
            vocab.encode(records[i], out=ids[starts[i] + 1 : ends[i] - 1])
            continue
        span = ids[starts[i] : ends[j - 1]]
        is_char = np.ones(len(span), bool)
        is_char[starts[i:j] - starts[i]] = False
        is_char[ends[i:j] - 1 - starts[i]] = False
        span[is_char] = vocab.encode("".join(records[i:j]))
    return ids


def split_train_val(ids: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The last `val_fraction` of the stream is validation; the cut moves to a record start if one follows."""
    if val_fraction == 0:
        return ids, ids[:0]
    cut = len(ids) - int(round(len(ids) * val_fraction))
    starts = np.flatnonzero(ids[cut:] == BOS)
    if len(starts):  # keep records whole when there are several
        cut += int(starts[0])
    return ids[:cut], ids[cut:]


@dataclass
class Corpus:
    vocab: Vocab
    train: np.ndarray  # (N_train,) ids
    val: np.ndarray  # (N_val,) ids; empty when data.val_fraction is 0


def load_corpus(cfg: DataConfig) -> Corpus:
    text = read_text(cfg.path, cfg.encoding, cfg.errors, DATA_PATH_HINT)
    records = split_records(text, cfg.records)
    if not records:
        raise DataError(f"{cfg.path}: no text to train on (the file is empty or holds only blank lines)")
    vocab = Vocab.from_texts(records)
    train, val = split_train_val(encode_records(records, vocab), cfg.val_fraction)
    if cfg.val_fraction > 0 and len(val) < 2:
        raise ConfigError(
            f"{cfg.path}: data.val_fraction: {cfg.val_fraction} of {len(train) + len(val)} ids leaves "
            "no validation text; use 0 or a longer text"
        )
    return Corpus(vocab, train, val)


def make_tracks(ids: np.ndarray, batch_size: int, seq_length: int) -> np.ndarray:
    """Cut the stream into batch_size contiguous tracks, as char-rnn does; the tail that does not fit is dropped."""
    n = len(ids) // batch_size
    if n < seq_length + 1:
        raise ConfigError(
            f"train.batch_size: {batch_size} tracks of seq_length + 1 = {seq_length + 1} ids need "
            f"{batch_size * (seq_length + 1)} training ids, the text gives {len(ids)}; "
            "lower train.batch_size or train.seq_length"
        )
    return ids[: n * batch_size].reshape(batch_size, n)  # (B, n)


def windows_per_epoch(tracks: np.ndarray, seq_length: int) -> int:
    return (tracks.shape[1] - 1) // seq_length


def window(tracks: np.ndarray, k: int, seq_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets of window k, time-major (T, B); targets are inputs shifted by one."""
    start = k * seq_length
    inputs = np.ascontiguousarray(tracks[:, start : start + seq_length].T)  # (T, B)
    targets = np.ascontiguousarray(tracks[:, start + 1 : start + seq_length + 1].T)  # (T, B)
    return inputs, targets
