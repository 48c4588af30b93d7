"""A sweep's progress on stderr: a live Rich table of its trials on a terminal, a line per trial event elsewhere;
and its leaderboard, as a table or as Markdown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

STATE_STYLE = {"running": "cyan", "complete": "green", "pruned": "yellow", "failed": "red", "stopped": "magenta"}


def shown_path(path: str | Path) -> str:
    """A path as the user would type it: relative to the current directory when it lies below it."""
    path = Path(path)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _loss(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if abs(value) < 1e5 else f"{value:.4g}"  # a diverging trial's loss stays narrow


def column_names(keys: list[str]) -> list[str]:
    """Each swept key's column: its name without the section, unless another column already has that name."""
    short = [k.partition(".")[2] for k in keys]
    taken = {"trial", "step", "steps", "val", "best", "state"}
    return [k if s in taken or short.count(s) > 1 else s for k, s in zip(keys, short)]


def _rank_key(row: dict) -> tuple:
    """Complete trials first, then the others, each by best validation loss; none last."""
    loss = row["best_val_loss"]
    return (row["state"] != "complete", loss is None, loss if loss is not None else 0.0, row["number"])


def _spread(row: dict) -> str:
    """The repeats' best losses from the lowest to the highest: 1.9012..1.9250."""
    spread = row.get("spread")
    return "-" if spread is None else f"{_loss(spread[0])}..{_loss(spread[1])}"


def leaderboard_rows(rows: list[dict], keys: list[str], repeats: int = 1) -> tuple[list[str], list[list[str]]]:
    """The header and the cells of the leaderboard: rank, trial, each swept key, steps, best val loss, state.

    With repeats the loss is the mean of the repeats' best ones, followed by their min..max."""
    losses = ["best val"] if repeats == 1 else ["mean best", "spread"]
    header = ["#", "trial", *column_names(keys), "steps", *losses, "at step", "state"]
    cells = []
    for rank, row in enumerate(sorted(rows, key=_rank_key), 1):
        cells.append(
            [
                str(rank),
                row["trial"],
                *(fmt_value(row["values"].get(k)) for k in keys),
                f"{row['step']}/{row['steps']}",
                _loss(row["best_val_loss"]),
                *([] if repeats == 1 else [_spread(row)]),
                fmt_value(row["best_step"]),
                row["state"],
            ]
        )
    return header, cells


def leaderboard_markdown(rows: list[dict], keys: list[str], repeats: int = 1) -> str:
    header, cells = leaderboard_rows(rows, keys, repeats)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    return "\n".join(lines) + "\n"


def leaderboard_plain(rows: list[dict], keys: list[str], repeats: int = 1) -> str:
    """Aligned columns with a header line, for pipes and logs."""
    header, cells = leaderboard_rows(rows, keys, repeats)
    table = [header, *cells]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    return "".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n" for r in table)


def show_leaderboard(rows: list[dict], keys: list[str], console: Console, repeats: int = 1) -> None:
    if not console.is_terminal:
        console.file.write(leaderboard_plain(rows, keys, repeats))
        return
    header, cells = leaderboard_rows(rows, keys, repeats)
    table = Table(*header, box=None, header_style="bold")
    for c in cells:
        table.add_row(*c[:-1], f"[{STATE_STYLE.get(c[-1], '')}]{c[-1]}[/]" if c[-1] in STATE_STYLE else c[-1])
    console.print(table)


class SweepProgress:
    """A `report(event, info)` callback for run_sweep; `close()` when it ends."""

    def __init__(self, quiet: bool = False):
        self.console = Console(stderr=True, soft_wrap=True, highlight=False)  # looked up now: test runners capture it
        self.quiet = quiet
        self.rows: dict[int, dict] = {}
        self.keys: list[str] = []
        self.live: Live | None = None

    def __call__(self, event: str, info: dict) -> None:
        if self.quiet:
            return
        if event == "start":
            self.keys = info["keys"]
            self.rows = {r["number"]: dict(r) for r in info["rows"]}
            threads = info["threads"]
            finished = f", {info['finished']} finished before" if info["finished"] else ""
            self.console.print(
                f"sweep: {info['trials']} trials{finished}, {info['concurrent']} at once with {threads} "
                f"BLAS thread{'s' * (threads > 1)} each, on {info['where']}; in {shown_path(info['out_dir'])}",
                markup=False,
            )
            if self.console.is_terminal:
                self.live = Live(self._table(), console=self.console, refresh_per_second=4, transient=True)
                self.live.start()
        elif event == "trial":
            before = self.rows.get(info["number"], {}).get("state")
            self.rows[info["number"]] = dict(info)
            if self.live is not None:
                self.live.update(self._table())
            elif info["state"] != before:
                self.console.print(self._line(info), markup=False)
        elif event == "note":
            self.console.print(info["text"], markup=False)

    def _line(self, row: dict) -> str:
        name, state, step = row["trial"], row["state"], row["step"]
        values = " ".join(f"{k}={fmt_value(v)}" for k, v in row["values"].items())
        loss = row["best_val_loss"]
        mean = "mean " * ("spread" in row)  # a trial of several repeats
        best = "" if loss is None else f", {mean}best val {_loss(loss)} at step {row['best_step']}"
        if state == "running":
            return f"{name} running{f' from step {step}' if step else ''}: {values}"
        if state == "failed":
            return f"{name} failed at step {step}: {row['error']}"
        if state == "stopped":
            return f"{name} stopped at step {step}{best}; its checkpoint is kept for --resume"
        return f"{name} {state} at step {step}/{row['steps']}{best}"

    def _table(self) -> Table:
        table = Table(
            "trial",
            *column_names(self.keys),
            "step",
            "val",
            "best",
            "state",
            box=None,
            header_style="bold",
        )
        rows = sorted(self.rows.values(), key=lambda r: r["number"])
        room = max(5, self.console.height - 4)
        if len(rows) > room:  # the running trials and the best others, in trial order
            running = [r for r in rows if r["state"] == "running"]
            best = sorted((r for r in rows if r["state"] != "running"), key=_rank_key)[: max(0, room - len(running))]
            rows = sorted(running + best, key=lambda r: r["number"])
        for r in rows:
            style = STATE_STYLE.get(r["state"], "")
            table.add_row(
                r["trial"],
                *(fmt_value(r["values"].get(k)) for k in self.keys),
                f"{r['step']}/{r['steps']}",
                _loss(r.get("val_loss")),
                _loss(r["best_val_loss"]),
                f"[{style}]{r['state']}[/]" if style else r["state"],
            )
        return table

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
