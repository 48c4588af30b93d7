"""Shared fixtures: paths to the repository's configs and to the shared corpus."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"


@pytest.fixture
def shakespeare() -> Path:
    if not SHAKESPEARE.is_file():
        pytest.skip(f"{SHAKESPEARE} is not here (it lives in ../shared beside the repository)")
    return SHAKESPEARE
