"""Checkpoints: arrays in a content-named .npz, everything else in a JSON file that points at it.

A run directory holds `latest.json` and (when there is validation) `best.json`. Each names its
weights file `weights-<step>-<sha256 prefix>.npz` and that file's sha256. Writes go to a temporary
file in the same folder, are flushed and fsynced, then renamed: the weights first, the JSON after,
and only then are weights that no JSON names deleted. A kill at any moment therefore leaves each
JSON naming a complete, matching weights file: the old checkpoint or the new one, never a broken one.
Loading never executes code: JSON, and npz with allow_pickle=False. `load_trained` turns a
checkpoint back into the config, vocabulary and model that `sample`, `eval`, `info` and `visualize` use.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np

from .config import Config, config_from_dict
from .errors import CharrnnError, CheckpointError, ConfigError
from .model import StackedRNN
from .vocab import Vocab

FORMAT = "charrnn-checkpoint"
VERSION = 1
KINDS = ("latest", "best")
TMP_PREFIX = ".tmp-"
WEIGHTS_NAME = re.compile(r"weights-\d{8}-[0-9a-f]{12}\.npz")


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a reader sees the old bytes or the new, never a mix.

    Raises CharrnnError naming the file when the disk refuses (full, read-only): the old file stays.
    """
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise CharrnnError(f"{path}: cannot write: {err.strerror or err}") from None
        raise


def remove_temporary(folder: Path) -> None:
    """Delete what a writer killed mid-write left behind: its temporary files are never complete."""
    for path in folder.glob(f"{TMP_PREFIX}*"):
        path.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    # the rename itself is durable only once the directory entry is on disk
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(run_dir: Path, arrays: dict[str, np.ndarray], meta: dict, kinds: tuple[str, ...]) -> Path:
    """Write one checkpoint as each of `kinds` ("latest", "best"); returns the path of the first JSON.

    Refuses non-finite arrays or metadata, so a NaN never reaches a checkpoint; a failed write
    leaves the previous checkpoints as they were.
    """
    step = meta["step"]
    broken = [name for name, a in arrays.items() if not np.isfinite(a).all()]
    if broken:
        raise CheckpointError(f"{run_dir}: not saving step {step}: {', '.join(broken)} not finite")
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]  # numpy's stubs read **arrays as its allow_pickle
    data = buf.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    weights = f"weights-{step:08d}-{sha[:12]}.npz"
    doc = {"format": FORMAT, "version": VERSION, "weights": weights, "weights_sha256": sha, **meta}
    try:
        text = (json.dumps(doc, indent=1, allow_nan=False) + "\n").encode()
    except ValueError:
        raise CheckpointError(f"{run_dir}: not saving step {step}: its metrics are not finite") from None
    try:
        atomic_write(run_dir / weights, data)
        # best before latest: a kill in between leaves latest behind, and resuming from it writes this best again
        for kind in sorted(kinds, key=lambda k: k != "best"):
            atomic_write(run_dir / f"{kind}.json", text)
    except CharrnnError as err:
        raise CheckpointError(f"{err}; checkpoint of step {step} not saved, the previous one is intact") from None
    finally:
        with contextlib.suppress(OSError):
            _remove_unreferenced(run_dir)  # also frees a full disk of the weights no JSON names
    return run_dir / f"{kinds[0]}.json"


def _remove_unreferenced(run_dir: Path) -> None:
    keep = set()
    for kind in KINDS:
        path = run_dir / f"{kind}.json"
        if not path.exists():
            continue
        try:
            keep.add(json.loads(path.read_text(encoding="utf-8"))["weights"])
        except (OSError, ValueError, KeyError, TypeError):
            return  # a JSON we cannot read may still name weights someone wants: delete nothing
    for path in run_dir.glob("weights-*.npz"):
        if path.name not in keep:
            path.unlink(missing_ok=True)


def resolve(path: str | Path | None, prefer: str = "best") -> Path:
    """The JSON file of a checkpoint given as a JSON file, a run directory, or None.

    A run directory gives its `prefer` checkpoint when it has one, else latest.json. None picks the
    run under ./runs whose checkpoint was written last.
    """
    if path is None:
        found = sorted(Path("runs").glob("*/latest.json"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise CheckpointError(
                "no checkpoint under ./runs: train one first (charrnn train configs/hello.yaml) "
                "or pass --checkpoint RUN_DIR"
            )
        path = found[-1].parent
    path = Path(path)
    if path.is_dir():
        for kind in (prefer, "latest"):
            if (path / f"{kind}.json").is_file():
                return path / f"{kind}.json"
        raise CheckpointError(f"{path}: no checkpoint in this directory (expected latest.json)")
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    if path.suffix != ".json":
        raise CheckpointError(f"{path}: expected a run directory or its latest.json / best.json")
    return path


def load(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Meta and arrays of the checkpoint whose JSON is at `path`, verified against its checksum."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise CheckpointError(f"{path}: not a charrnn checkpoint (unreadable JSON: {err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f'{path}: not a charrnn checkpoint (no "format": "{FORMAT}")')
    if meta.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {meta.get('version')!r}, this charrnn reads version {VERSION}; "
            "HINT: sample it with the charrnn that wrote it, or train again"
        )
    if not WEIGHTS_NAME.fullmatch(str(meta.get("weights"))):
        raise CheckpointError(f'{path}: not a charrnn checkpoint ("weights" is {meta.get("weights")!r})')
    weights = path.parent / meta["weights"]
    try:
        data = weights.read_bytes()
    except OSError:
        raise CheckpointError(f"{path}: its weights file {weights.name} is missing") from None
    if hashlib.sha256(data).hexdigest() != meta.get("weights_sha256"):
        raise CheckpointError(f"{weights}: damaged (checksum does not match {path.name})")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"{weights}: damaged ({err})") from None
    return meta, arrays


def weights_used(cfg: Config, raw: bool) -> str:
    """Which weights load_trained gives for a run with config `cfg`: "ema", the average the run kept under
    train.ema, unless `raw` asks for the weights themselves or the run kept none; else "raw"."""
    return "ema" if cfg.train.ema > 0 and not raw else "raw"


def load_trained(
    path: str | Path | None, prefer: str = "best", raw: bool = False
) -> tuple[Config, Vocab, StackedRNN, dict]:
    """Config, vocabulary, model and meta of a saved checkpoint (see resolve for `path`); the model holds the
    averaged weights when the run kept them, unless `raw` (see weights_used)."""
    json_path = resolve(path, prefer)
    try:
        meta, arrays = load(json_path)
    except CheckpointError as err:
        others = [p for p in (json_path.with_name(f"{k}.json") for k in KINDS) if p != json_path and p.is_file()]
        raise CheckpointError(f"{err}{f'; try --checkpoint {others[0]}' if others else ''}") from None
    try:
        cfg = config_from_dict(meta.get("config"), str(json_path))
        vocab = Vocab.from_json(meta["vocab"])
    except (ConfigError, KeyError, ValueError, TypeError) as err:
        raise CheckpointError(f"{json_path}: damaged metadata: {err}") from None
    model = StackedRNN(vocab.size, cfg.model.hidden_size, cfg.model.num_layers, dtype=np.float32, cell=cfg.model.cell)
    kind = {"ema": "ema", "raw": "param"}[weights_used(cfg, raw)]
    for name, dst in model.params.items():
        src = arrays.get(f"{kind}/{name}")
        if src is None or src.shape != dst.shape:
            raise CheckpointError(
                f"{json_path}: weights {name}{' (averaged)' if kind == 'ema' else ''} missing or of the wrong "
                "shape for its config "
                f"(model.cell {cfg.model.cell}, hidden_size {cfg.model.hidden_size}, num_layers {cfg.model.num_layers})"
            )
        dst[...] = src
    return cfg, vocab, model, meta
