"""Write a second corpus for bench/quality.py: ~1.1 MB of Python, this interpreter's standard library.

The ASCII `*.py` files at the top of the library, in sorted order, until 1,100,000 characters are
passed; the text is not the play, so a race on it checks that nothing is tuned to Tiny Shakespeare.

    python bench/stdlib_corpus.py stdlib.txt
    python bench/quality.py --data stdlib.txt --sizes 2x128 --steps 2000 --seconds 300
"""

import sys
import sysconfig
from pathlib import Path

SIZE = 1_100_000


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python bench/stdlib_corpus.py OUT.txt")
    parts, n = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        text = path.read_text(encoding="utf-8")
        if not text.isascii():
            continue
        parts.append(text)
        n += len(text)
        if n > SIZE:
            break
    Path(sys.argv[1]).write_text("".join(parts), encoding="utf-8")
    print(f"{sys.argv[1]}: {n:,} characters from {len(parts)} files", file=sys.stderr)


if __name__ == "__main__":
    main()
