"""Public training texts: where each is published, its sha256, and a download that writes it atomically."""

from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import atomic_write
from .errors import ConfigError, DataError


@dataclass(frozen=True)
class Dataset:
    url: str
    sha256: str
    filename: str
    used_by: str  # which config expects the file, and where: said when the download fails


DATASETS = {
    "tinyshakespeare": Dataset(
        url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        filename="tinyshakespeare.txt",
        used_by="configs/shakespeare.yaml reads data/tinyshakespeare.txt",
    ),
}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _download(url: str, timeout: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as err:
        raise DataError(f"HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        raise DataError(str(err.reason)) from None
    except (OSError, http.client.HTTPException) as err:  # timeouts, resets, a body cut short
        raise DataError(str(err) or type(err).__name__) from None


def get(name: str, folder: Path, url: str | None = None, timeout: float = 30.0) -> tuple[Path, bool]:
    """Fetch data set `name` into `folder`; returns its path and whether it was downloaded (False: already there).

    Nothing is written unless the whole download matches the published sha256; the file appears by rename.
    """
    if name not in DATASETS:
        raise ConfigError(f"{name}: unknown data set (known: {', '.join(DATASETS)})")
    ds = DATASETS[name]
    dest = folder / ds.filename
    if dest.is_file():
        if _sha256(dest.read_bytes()) == ds.sha256:
            return dest, False
        raise DataError(
            f"{dest}: already exists and is not the published {name} (sha256 differs); move it away to download again"
        )
    source = url or ds.url
    if not source.startswith(("http://", "https://")):
        raise ConfigError(f"--url: expected an http:// or https:// address, got {source!r}")
    try:
        data = _download(source, timeout)
    except DataError as err:
        raise DataError(
            f"cannot download {source} ({err}); offline? fetch it another way and save it as {dest} ({ds.used_by})"
        ) from None
    digest = _sha256(data)
    if digest != ds.sha256:
        raise DataError(f"{source}: sha256 {digest} is not the published {name}'s {ds.sha256}; nothing written")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(dest, data)
    except OSError as err:
        raise DataError(f"{dest}: cannot write: {err.strerror or err}") from None
    return dest, True
