"""Shared by the reliability tests: a tiny run config, the one-line error check, run-directory snapshots."""

import json
import sys
from pathlib import Path

import numpy as np
import yaml
from typer.testing import CliRunner

from charrnn import checkpoint
from charrnn.cli import app

TEXT = "the quick brown fox jumps over the lazy dog\n" * 20  # 880 chars: 19 windows of 8 on each of 4 tracks
# the console script pip installed beside this python; `python -m charrnn` where there is none
COMMAND = (
    [str(Path(sys.executable).with_name("charrnn"))]
    if Path(sys.executable).with_name("charrnn").exists()
    else [sys.executable, "-m", "charrnn"]
)


def invoke(*args):
    """The CLI in-process; an exception that is not a clear error fails the test with its traceback."""
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def write_config(folder: Path, name: str = "run.yaml", text: str | None = TEXT, **sections) -> Path:
    """A tiny run: H=8, L=2, T=8, B=4, 12 steps, validation every 4, checkpoint every 5, out_dir runs/<stem>."""
    if text is not None:
        (folder / "t.txt").write_bytes(text.encode())
    cfg = {
        "data": {"path": "t.txt", "val_fraction": 0.1},
        "model": {"hidden_size": 8, "num_layers": 2},
        "train": {"seq_length": 8, "batch_size": 4, "steps": 12, "eval_every": 4, "checkpoint_every": 5},
    }
    for section, values in sections.items():
        cfg.setdefault(section, {}).update(values)
    path = folder / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def assert_one_line_error(exit_code: int, stdout: str, stderr: str, code: int, *fragments: str) -> None:
    assert exit_code == code, stderr
    assert stderr.startswith("Error: ") and stderr.count("\n") == 1 and stderr.endswith("\n"), stderr
    assert "Traceback" not in stderr
    assert stdout == ""
    for fragment in fragments:
        assert fragment in stderr, (fragment, stderr)


def snapshot(folder: Path) -> dict[str, bytes] | None:
    """Every file under `folder` with its bytes; None when the folder does not exist."""
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_clean_run(run_dir: Path, orphans_ok: bool = False) -> None:
    """No temporary or lock file; every checkpoint JSON loads, verified, and holds only finite numbers.

    orphans_ok: a kill between writing weights and the JSON naming them leaves complete weights no JSON names.
    """
    names = {p.name for p in run_dir.iterdir()}
    assert not [n for n in names if n.startswith(checkpoint.TMP_PREFIX) or n == "lock"], names
    referenced = set()
    for kind in checkpoint.KINDS:
        if (run_dir / f"{kind}.json").exists():
            meta, arrays = checkpoint.load(run_dir / f"{kind}.json")
            json.dumps(meta, allow_nan=False)
            assert all(np.isfinite(a).all() for a in arrays.values()), kind
            referenced.add(meta["weights"])
    assert orphans_ok or {n for n in names if n.startswith("weights-")} == referenced, names


def losses(run_dir: Path) -> list[dict]:
    """metrics.jsonl without its wall-clock fields: what must match to the bit between two runs."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in ("time", "chars_per_sec")} for line in lines]
