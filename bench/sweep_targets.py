"""The targets of `charrnn sweep` (issue 13), measured on this machine: figures and ratios on stdout.

    python bench/sweep_targets.py            # the real thing, alone on the machine: about 25 minutes on 2 cores
    python bench/sweep_targets.py --json     # the same as one JSON object on stdout, the report on stderr
    python bench/sweep_targets.py --text data/names.txt --steps 20 --hidden 8 --random 4   # a smoke run

1. A grid of 8 trials of 2 x H (128) for --steps (1,500) steps, all of the same cost (rate x dropout x
   schedule): `charrnn sweep` with its defaults, against the same 8 runs one after another with
   `charrnn train --set train.workers=1` (one process each), and with `charrnn train`'s own defaults.
   Targets: sweep <= 0.65 x the first, <= 1.1 x the second. Each side is timed as a user runs it, from the
   command to its exit, after one warm-up run; the sweep's best loss is checked against the runs'.
2. A random search of --random (16) trials over rate, dropout and schedule, with ASHA and without:
   the same seed draws the same values. Targets: ASHA trains <= 50 % of the steps, and its best trial
   is within 0.02 nats of the search's best.
3. Starting and stopping the local cluster as `charrnn sweep` does (one process per core, 127.0.0.1):
   target <= 10 s; the median of 3 after one warm-up.

Everything is written under a temporary folder (--keep DIR keeps it). The text defaults to Tiny
Shakespeare: data/tinyshakespeare.txt, else ../shared/data/tinyshakespeare.txt.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from charrnn.sweep_file import override

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [ROOT / "data" / "tinyshakespeare.txt", ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"]
CHARRNN = [sys.executable, "-m", "charrnn"]
GRID = {  # 8 trials of one shape: only what a step computes with changes, never its cost
    "train.learning_rate": [1.0e-3, 2.0e-3],
    "model.dropout": [0.0, 0.1],
    "train.lr_schedule": ["step", "cosine"],
}
RANDOM = {
    "train.learning_rate": {"loguniform": [5.0e-4, 1.0e-2]},
    "model.dropout": {"uniform": [0.0, 0.3]},
    "train.lr_schedule": ["step", "cosine"],
}


def log(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


def timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    """Wall seconds of a command, from its start to its exit; its stdout. A failure stops the bench."""
    began = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)}: exit {done.returncode}\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def write_base(folder: Path, args) -> Path:
    """The run every trial starts from: char-rnn's 2 x 128 on the text, validation every --every steps."""
    base = {
        "data": {"path": str(args.text), "val_fraction": 0.1},
        "model": {"hidden_size": args.hidden, "num_layers": 2},
        "train": {
            "seq_length": args.seq_length,
            "batch_size": args.batch_size,
            "steps": args.steps,
            "eval_every": args.every,
            "checkpoint_every": args.steps,
        },
    }
    path = folder / "base.yaml"
    path.write_text(yaml.safe_dump(base, sort_keys=False))
    return path


def write_sweep(folder: Path, name: str, **keys) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"config": "base.yaml", "out_dir": str(folder / name), **keys}, sort_keys=False))
    return path


def sweep(path: Path, folder: Path) -> tuple[float, list[dict], dict]:
    seconds, out = timed([*CHARRNN, "sweep", str(path), "--json", "--quiet"], folder)
    lines = [json.loads(line) for line in out.splitlines()]
    return seconds, lines[:-1], lines[-1]


def grid_section(folder: Path, base: Path, args) -> dict:
    points = [dict(zip(GRID, values)) for values in itertools.product(*GRID.values())]
    log(f"grid: {len(points)} trials of 2 x {args.hidden}, {args.steps} steps each")
    warm = [*CHARRNN, "train", str(base), "-q", "--set", "train.steps=5", "--set", f"train.out_dir={folder / 'warm'}"]
    timed(warm, folder)  # burn-in: the imports and the text in the page cache

    def one_by_one(label: str, extra: list[str]) -> tuple[float, list[float]]:
        total, best = 0.0, []
        for i, point in enumerate(points):
            sets = [a for k, v in point.items() for a in ("--set", override(k, v))]
            out_dir = folder / label / f"t{i:03d}"
            cmd = [*CHARRNN, "train", str(base), "-q", "--json", *sets, *extra, "--set", f"train.out_dir={out_dir}"]
            seconds, out = timed(cmd, folder)
            total += seconds
            best.append(json.loads(out)["best_val_loss"])
            log(f"  {label} {i + 1}/{len(points)}: {seconds:.1f} s")
        return total, best

    grid = write_sweep(folder, "grid", space=GRID, search="grid")
    sweep_seconds, trials, _ = sweep(grid, folder)
    log(f"  sweep: {sweep_seconds:.1f} s")
    one_seconds, one_best = one_by_one("workers-1", ["--set", "train.workers=1"])
    default_seconds, _ = one_by_one("defaults", [])
    drift = max(abs(t["best_val_loss"] - b) for t, b in zip(trials, one_best))
    return {
        "trials": len(points),
        "steps": args.steps,
        "sweep_seconds": sweep_seconds,
        "one_by_one_workers_1_seconds": one_seconds,
        "one_by_one_defaults_seconds": default_seconds,
        "ratio_to_workers_1": sweep_seconds / one_seconds,
        "ratio_to_defaults": sweep_seconds / default_seconds,
        "max_best_loss_difference": drift,  # same config, seed and one worker: only BLAS threads' rounding
    }


def asha_section(folder: Path, args) -> dict:
    log(f"random search: {args.random} trials, {args.steps} steps each, with ASHA and without")
    result = {"trials": args.random, "steps": args.steps}
    for pruner in ("none", "asha"):
        keys = {"space": RANDOM, "search": "random", "samples": args.random, "pruner": pruner, "seed": args.seed}
        path = write_sweep(folder, f"random-{pruner}", **keys)
        seconds, trials, summary = sweep(path, folder)
        log(f"  {pruner}: {seconds:.1f} s, {summary['steps_trained']} steps, best {summary['best_val_loss']:.4f}")
        result[pruner] = {
            "seconds": seconds,
            "steps_trained": summary["steps_trained"],
            "pruned": summary["pruned"],
            "best_val_loss": summary["best_val_loss"],
            "best_trial": summary["best_trial"],
        }
    result["steps_ratio"] = result["asha"]["steps_trained"] / result["none"]["steps_trained"]
    result["best_loss_difference"] = result["asha"]["best_val_loss"] - result["none"]["best_val_loss"]
    return result


def cluster_section(repeats: int) -> dict:
    """As charrnn.sweep starts it (its own function, so the figure is the verb's), after one warm-up."""
    import logging

    from distributed import Client

    from charrnn import parallel
    from charrnn.sweep import local_cluster

    log(f"local cluster: start and stop, {repeats} times after a warm-up")
    logging.getLogger("distributed").setLevel(logging.ERROR)  # its INFO lines about each start and stop
    times = []
    with tempfile.TemporaryDirectory() as scratch:
        log_file = Path(scratch) / "cluster.log"
        for i in range(repeats + 1):
            began = time.perf_counter()
            cluster = local_cluster(parallel.cores(), log_file, scratch)
            client = Client(cluster, set_as_default=False)
            client.close()
            cluster.close()
            if i:  # the first pays for the page cache
                times.append(time.perf_counter() - began)
    return {"workers": parallel.cores(), "seconds": statistics.median(times), "all_seconds": times}


def report(results: dict) -> str:
    lines = []
    if "grid" in results:
        g = results["grid"]
        lines += [
            f"## {g['trials']}-trial grid, {g['steps']} steps each",
            f"charrnn sweep (defaults):                         {g['sweep_seconds']:8.1f} s",
            f"{g['trials']} x charrnn train, train.workers=1, one by one: {g['one_by_one_workers_1_seconds']:8.1f} s",
            f"{g['trials']} x charrnn train, defaults, one by one:        {g['one_by_one_defaults_seconds']:8.1f} s",
            f"ratio to workers=1: {g['ratio_to_workers_1']:.3f} (target <= 0.65)",
            f"ratio to defaults:  {g['ratio_to_defaults']:.3f} (target <= 1.1)",
            f"largest difference of a trial's best loss from its own run: {g['max_best_loss_difference']:.2e} nats",
            "",
        ]
    if "asha" in results:
        a = results["asha"]
        lines += [f"## {a['trials']}-trial random search, {a['steps']} steps each"]
        for pruner in ("none", "asha"):
            r = a[pruner]
            lines.append(
                f"{pruner:>4}: {r['steps_trained']:7d} steps, {r['pruned']:2d} pruned, best {r['best_val_loss']:.4f} "
                f"({r['best_trial']}), {r['seconds']:.1f} s"
            )
        lines += [
            f"steps with ASHA / without: {a['steps_ratio']:.3f} (target <= 0.50)",
            f"best with ASHA - without: {a['best_loss_difference']:+.4f} nats (target <= 0.02)",
            "",
        ]
    if "cluster" in results:
        c = results["cluster"]
        lines += [
            f"## local cluster of {c['workers']} workers: start and stop {c['seconds']:.2f} s (median; target <= 10)",
        ]
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--text", type=Path, default=next((t for t in TEXTS if t.exists()), TEXTS[0]))
    parser.add_argument("--steps", type=int, default=1500, help="steps of every trial and run (default 1500)")
    parser.add_argument("--hidden", type=int, default=128, help="units per layer, 2 layers (default 128)")
    parser.add_argument("--seq-length", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--every", type=int, default=100, help="validation every N steps: ASHA's rungs (100)")
    parser.add_argument("--random", type=int, default=16, help="trials of the random search (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random search")
    parser.add_argument("--repeats", type=int, default=3, help="timed cluster starts (default 3)")
    parser.add_argument("--skip", default="", help="comma-separated sections to skip: grid, asha, cluster")
    parser.add_argument("--keep", type=Path, help="write the runs here and keep them")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout, the report on stderr")
    args = parser.parse_args()
    if not args.text.exists():
        sys.exit(f"{args.text}: no such text; charrnn data get tinyshakespeare, or --text FILE")
    args.text = args.text.resolve()
    skip = set(filter(None, args.skip.split(",")))
    results: dict = {"text": str(args.text), "cores": len(os.sched_getaffinity(0))}
    folder = Path(args.keep or tempfile.mkdtemp(prefix="charrnn-sweep-bench-")).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        base = write_base(folder, args)
        if "grid" not in skip:
            results["grid"] = grid_section(folder, base, args)
        if "asha" not in skip:
            results["asha"] = asha_section(folder, args)
        if "cluster" not in skip:
            results["cluster"] = cluster_section(args.repeats)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    text = report(results)
    if args.json:
        log(text)
        print(json.dumps(results))
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
