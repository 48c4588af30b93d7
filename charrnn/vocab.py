"""Character vocabulary: id 0 is the start token <s>, id 1 the end token </s>, then sorted characters."""

from __future__ import annotations

import numpy as np

BOS, EOS = 0, 1
SPECIALS = ("<s>", "</s>")
_CHUNK = 1 << 16  # characters handled at a time: small temporary copies, reused from cache
_CODE_POINTS = 0x110000


def _codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")


def _latin1(text: str) -> bytes | None:
    """One byte per character when every code point is below 256 (all ASCII text), else None."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return None


def _pieces(texts: list[str]):
    """The texts cut or joined into strings of about _CHUNK characters: a few calls however long or many."""
    group, size = [], 0
    for text in texts:
        for start in range(0, len(text), _CHUNK):
            group.append(text[start : start + _CHUNK] if len(text) > _CHUNK else text)
            size += len(group[-1])
            if size >= _CHUNK:
                yield "".join(group)
                group, size = [], 0
    if group:
        yield "".join(group)


class Vocab:
    """The characters a model knows, in a fixed order that survives save and load.

    >>> v = Vocab.from_texts(["hello"])
    >>> v.chars, v.size, v.encode("hole").tolist()
    (['e', 'h', 'l', 'o'], 6, [3, 5, 4, 2])
    """

    def __init__(self, chars: list[str]):
        if sorted(set(chars)) != list(chars) or any(len(c) != 1 for c in chars):
            raise ValueError("vocabulary must be sorted unique single characters")
        self.chars = list(chars)
        # the id of every code point; 0 (<s>, which no character encodes to) where the vocabulary lacks it
        self._ids = np.zeros(_CODE_POINTS, self.id_dtype)
        self._ids[[ord(c) for c in chars]] = np.arange(len(SPECIALS), self.size)
        # the same table for bytes.translate, which maps one byte per character at memory speed
        self._byte_ids = self._ids[:256].tobytes() if self.id_dtype == np.uint8 else None

    @classmethod
    def from_texts(cls, texts: list[str]) -> Vocab:
        seen = np.zeros(_CODE_POINTS, dtype=bool)  # one flag per Unicode code point
        known = bytearray()  # byte values met so far in pieces of one byte per character
        for piece in _pieces(texts):
            raw = _latin1(piece)
            if raw is None:
                seen[_codepoints(piece)] = True
                continue
            new = raw.translate(None, known)  # drop every known byte: soon nothing is left, in one fast pass
            while new:
                known.append(new[0])
                new = new.translate(None, new[:1])
        seen[list(known)] = True
        return cls([chr(c) for c in np.flatnonzero(seen)])

    @property
    def size(self) -> int:
        return len(self.chars) + len(SPECIALS)

    @property
    def id_dtype(self) -> np.dtype:
        """Smallest unsigned type that holds every id: one or two bytes per character in practice."""
        return np.dtype(np.uint8 if self.size <= 1 << 8 else np.uint16 if self.size <= 1 << 16 else np.uint32)

    def unknown(self, text: str) -> list[str]:
        """Characters of `text` that are not in the vocabulary, sorted."""
        return sorted(set(text) - set(self.chars))

    def encode(self, text: str, out: np.ndarray | None = None) -> np.ndarray:
        """Ids of the characters of `text` (no start or end token), written into `out` (len(text),) when
        given; every character must be known."""
        out = np.empty(len(text), dtype=self.id_dtype) if out is None else out
        for start in range(0, len(text), _CHUNK):
            piece = text[start : start + _CHUNK]
            raw = _latin1(piece) if self._byte_ids is not None else None
            if raw is not None:
                out[start : start + len(piece)] = np.frombuffer(raw.translate(self._byte_ids), np.uint8)
            else:
                out[start : start + len(piece)] = self._ids[_codepoints(piece)]
        if not out.all():  # an id 0 came from a character the vocabulary lacks
            raise KeyError(f"characters not in the vocabulary: {self.unknown(text)}")
        return out

    def decode(self, ids) -> str:
        """Text of character ids; start and end tokens decode to nothing."""
        return "".join(self.chars[i - len(SPECIALS)] for i in np.asarray(ids).tolist() if i >= len(SPECIALS))

    def to_json(self) -> list[str]:
        return list(self.chars)

    @classmethod
    def from_json(cls, chars: list[str]) -> Vocab:
        return cls(chars)
