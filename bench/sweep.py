"""Train variants of one config with `charrnn train` and table their best validation loss.

A sweep file names a config, the --set options every variant shares, and each variant's own:

    config: configs/shakespeare.yaml
    common: [data.path=../shared/data/tinyshakespeare.txt, train.steps=1500]
    variants:
      torch: [model.init=torch]
      uniform: [model.init=uniform]

    python bench/sweep.py bench/sweeps/init.yaml             # every variant, one after another
    python bench/sweep.py bench/sweeps/init.yaml --only torch --json

Paths in the sweep file (config, and data.path in the options) resolve against the repository root.
Runs go to a temporary directory unless --keep DIR. The table goes to stdout (JSON lines with --json);
each run's progress lines to stderr. This is how the training-craft defaults were chosen (bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def run_variant(config: Path, sets: list[str], out_dir: Path) -> dict:
    """One `charrnn train --json` in a subprocess; its summary, or {"error": "exit N"} (its error line is on stderr)."""
    cmd = [
        sys.executable,
        "-m",
        "charrnn",
        "train",
        str(config),
        "--json",
        "--force",
        "--set",
        f"train.out_dir={out_dir}",
    ]
    for option in sets:
        cmd += ["--set", option]
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}"}
    return json.loads(done.stdout)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweep", help="YAML file: config, common, variants")
    p.add_argument("--only", action="append", default=[], help="run just this variant (repeatable)")
    p.add_argument("--keep", default=None, help="write the runs under this directory and keep them")
    p.add_argument("--json", action="store_true", help="one JSON object per variant on stdout")
    args = p.parse_args()
    spec = yaml.safe_load(Path(args.sweep).read_text(encoding="utf-8"))
    config = ROOT / spec["config"]
    names = args.only or list(spec["variants"])
    unknown = [n for n in names if n not in spec["variants"]]
    if unknown:
        sys.exit(f"{args.sweep}: no variant named {', '.join(unknown)}; it has {', '.join(spec['variants'])}")
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(args.keep) if args.keep else Path(scratch)
        if not args.json:
            print(f"{args.sweep}: {spec['config']} with {' '.join(spec.get('common', []))}\n")
            print("| variant | options | steps | best val (nats) | bits/char | at step | seconds | chars/s |")
            print("|---|---|---|---|---|---|---|---|", flush=True)
        for name in names:
            sets = list(spec.get("common", [])) + list(spec["variants"][name])
            print(f"sweep: {name}", file=sys.stderr, flush=True)
            summary = run_variant(config, sets, base / name)
            if args.json:
                print(json.dumps({"variant": name, "options": spec["variants"][name], **summary}), flush=True)
                continue
            if "error" in summary:
                print(f"| {name} | {' '.join(spec['variants'][name])} | {summary['error']} | | | | | |", flush=True)
                continue
            best = summary["best_val_loss"]
            print(
                f"| {name} | {' '.join(spec['variants'][name])} | {summary['step']} | {best:.4f} | "
                f"{best / math.log(2):.4f} | {summary['best_step']} | {summary['wall_seconds']:.0f} | "
                f"{summary['chars_per_sec']:,.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
