"""`charrnn data get`: download a public training text and print where it went."""

from __future__ import annotations

from pathlib import Path

from .. import datasets
from .output import err_console, write_stdout


def get(name: str, to: str, url: str | None) -> None:
    path, downloaded = datasets.get(name, Path(to), url)
    err_console().print(f"{'downloaded' if downloaded else 'already there, checksum ok:'} {path}", markup=False)
    write_stdout(f"{path}\n")
