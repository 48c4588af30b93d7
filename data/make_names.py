"""Write data/names.txt: 3,000 invented given names, one per line, built from syllables.

No list of real names is copied: each name is two or three syllables drawn with fixed weights, and
an ending that gives the set a few habits for a model to learn (-a, -el, -ine, -o, -an ...).
Deterministic: `python data/make_names.py [OUT]` always writes the same file (default: data/names.txt).
"""

import sys
from pathlib import Path

import numpy as np

FIRST = "b br c ch d dr f g gr h j k l m n p r s sh st t th tr v w z".split() + [""] * 4
INNER = "b d f g h k l m n p r s t v z".split()  # single consonants inside a name: no clusters like "thh"
VOWELS = ["a", "e", "i", "o", "u", "a", "e", "i", "ai", "ea", "io", "ou"]
CODAS = [""] * 8 + ["l", "n", "r", "s", "m"]
ENDINGS = ["a", "ella", "ina", "ine", "el", "an", "on", "o", "ie", "ette", "us", "is", "yn", "ard", "wen"]


def name(rng: np.random.Generator) -> str:
    parts = [rng.choice(FIRST), rng.choice(VOWELS), rng.choice(CODAS)]
    if rng.random() < 0.4:
        parts += [rng.choice(INNER), rng.choice(VOWELS), rng.choice(CODAS)]
    parts += [rng.choice(INNER), rng.choice(ENDINGS)]
    return "".join(parts).capitalize()


def main(out: Path) -> None:
    rng = np.random.default_rng(2015)
    names: dict[str, None] = {}  # insertion-ordered set
    while len(names) < 3000:
        n = name(rng)
        if 3 <= len(n) <= 12:
            names[n] = None
    out.write_text("\n".join(names) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("names.txt"))
