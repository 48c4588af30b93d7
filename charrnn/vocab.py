"""Character vocabulary: id 0 is the start token <s>, id 1 the end token </s>, then sorted characters."""

from __future__ import annotations

import numpy as np

BOS, EOS = 0, 1
SPECIALS = ("<s>", "</s>")
_CHUNK = 1 << 24  # characters encoded at a time: bounds the UTF-32 copy of a large text


def _codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")


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
        self._codes = np.array([ord(c) for c in chars], dtype=np.uint32)  # sorted, for searchsorted

    @classmethod
    def from_texts(cls, texts: list[str]) -> "Vocab":
        seen = np.zeros(0x110000, dtype=bool)  # one flag per Unicode code point
        for text in texts:
            for start in range(0, len(text), _CHUNK):
                seen[_codepoints(text[start:start + _CHUNK])] = True
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

    def encode(self, text: str) -> np.ndarray:
        """Ids of the characters of `text` (no start or end token); every character must be known."""
        out = np.empty(len(text), dtype=self.id_dtype)
        for start in range(0, len(text), _CHUNK):
            codes = _codepoints(text[start:start + _CHUNK])
            pos = np.searchsorted(self._codes, codes)
            if len(self._codes) == 0 or np.any(self._codes[np.minimum(pos, len(self._codes) - 1)] != codes):
                raise KeyError(f"characters not in the vocabulary: {self.unknown(text)}")
            out[start:start + len(codes)] = pos + len(SPECIALS)
        return out

    def decode(self, ids) -> str:
        """Text of character ids; start and end tokens decode to nothing."""
        return "".join(self.chars[i - len(SPECIALS)] for i in np.asarray(ids).tolist() if i >= len(SPECIALS))

    def to_json(self) -> list[str]:
        return list(self.chars)

    @classmethod
    def from_json(cls, chars: list[str]) -> "Vocab":
        return cls(chars)
