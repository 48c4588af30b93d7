"""The `charrnn` command: wiring only, one call per verb.

A CharrnnError becomes one `Error: ...` line on stderr and its exit code (2 usage/config, 1 runtime);
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import math
import shlex
import sys
from contextlib import contextmanager
from typing import Iterator, List, Optional

import numpy as np
import typer
from rich.console import Console
from typer.core import TyperGroup

from .errors import CharrnnError, ConfigError
from .progress import Reporter
from .run import load_trained, stop_on_signals, train_run
from .sample import sample as generate

_UsageError = typer.BadParameter.__bases__[0]  # click's UsageError, from whichever click typer ships with


class _OneLineUsage(TyperGroup):
    """Command-line mistakes (an unknown option, a value that does not parse) as one `Error:` line, exit 2."""

    def make_context(self, info_name, args, parent=None, **extra):
        with _usage_line(bool(args)):  # no arguments at all: click shows the help, keep that
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx):
        with _usage_line(True):
            return super().invoke(ctx)


@contextmanager
def _usage_line(active: bool) -> Iterator[None]:
    try:
        yield
    except _UsageError as err:
        if not active:
            raise
        where = err.ctx.command_path if err.ctx is not None else "charrnn"
        _err().print(f"Error: {err.format_message()} (see '{where} --help')", markup=False)
        raise typer.Exit(2) from None


app = typer.Typer(
    cls=_OneLineUsage,
    name="charrnn",
    help="Train a character-level stacked vanilla RNN from a YAML config, and sample text from it.",
    rich_markup_mode=None,
    no_args_is_help=True,
    add_completion=True,
)


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)  # per call: runners capture it


# a path or value holding a line break must not break the error's single line
_ONE_LINE = {ord(c): repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except CharrnnError as err:
        _err().print(f"Error: {str(err).translate(_ONE_LINE)}", markup=False)
        raise typer.Exit(err.exit_code) from None


@app.command()
def train(
    config: str = typer.Argument(..., help="YAML run config, e.g. configs/hello.yaml"),
    set_: List[str] = typer.Option([], "--set", metavar="SECTION.KEY=VALUE",
                                   help="Override one config key; repeatable."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run directory's latest checkpoint."),
    force: bool = typer.Option(False, "--force", help="Start over in a run directory that holds a checkpoint."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary of the run on stdout."),
) -> None:
    """Train a model as CONFIG describes; checkpoints go to train.out_dir (default runs/<config stem>).

    Example: charrnn train configs/shakespeare.yaml --set train.steps=500
    """
    with _errors():
        with stop_on_signals() as received:
            reporter = Reporter(quiet=quiet)
            try:
                summary = train_run(config, set_, resume, force, reporter, received)
            except (KeyboardInterrupt, Exception) as err:
                # a second signal stops at once: as KeyboardInterrupt, or as whatever the code it hit made of it
                if not isinstance(err, KeyboardInterrupt) and len(received) < 2:
                    raise
                reporter.close()
                _err().print("interrupted again: stopped at once; the last complete checkpoint is intact")
                raise typer.Exit(_signal_exit(received)) from None
            finally:
                reporter.close()
        if as_json:
            bits = {f"{k}_bits_per_char": summary[k] / math.log(2) if summary[k] is not None else None
                    for k in ("train_loss", "val_loss", "best_val_loss")}
            _write_stdout(json.dumps({**summary, **bits}) + "\n")
    err = _err()
    if summary["interrupted"]:
        again = ["charrnn", "train", config, *(a for s in set_ for a in ("--set", s)), "--resume"]
        err.print(f"interrupted at step {summary['step']}; checkpoint saved in {summary['run_dir']}", markup=False)
        err.print(f"resume with: {shlex.join(again)}", markup=False)
        raise typer.Exit(_signal_exit(received))
    if not quiet:
        val = summary["best_val_loss"]
        best = f", best val loss {val:.4f} at step {summary['best_step']}" if val is not None else ""
        err.print(f"done: {summary['step']} steps, train loss {summary['train_loss']:.4f}{best}; "
                  f"run directory {summary['run_dir']}")


def _signal_exit(received: list[int]) -> int:
    return 128 + int(received[-1]) if received else 130  # the shell's convention: 130 SIGINT, 143 SIGTERM


def _write_stdout(text: str) -> None:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        raise  # the reader left (`| head`): click exits quietly
    except OSError as err:
        raise CharrnnError(f"cannot write to stdout: {err.strerror}") from None


def _check(option: str, value, ok: bool, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{option}: expected {expected}, got {value!r}")


@app.command()
def sample(
    checkpoint: Optional[str] = typer.Option(
        None, "--checkpoint", "-c", metavar="PATH|RUN_DIR",
        help="Checkpoint JSON or run directory (its best checkpoint, else latest); default: newest under ./runs."),
    prime: str = typer.Option("", "--prime", "-p", help="Text the sample starts with."),
    length: Optional[int] = typer.Option(None, "--length", "-n", help="Characters after the prime, at most."),
    temperature: Optional[float] = typer.Option(None, "--temperature", "-t", help="0 is greedy argmax."),
    top_k: Optional[int] = typer.Option(None, "--top-k", "-k", help="Sample among the K likeliest characters."),
    seed: Optional[int] = typer.Option(None, "--seed", "-s", help="Seed for a reproducible sample."),
    num: int = typer.Option(1, "--num", help="Number of samples, each on stdout ending with a newline."),
) -> None:
    """Print text sampled from a trained model on stdout: the prime, then its continuation.

    Stops at the end token or after --length characters; unset options take the run config's sample section.
    Example: charrnn sample --checkpoint runs/shakespeare --prime "ROMEO:" --temperature 0.8
    """
    with _errors():
        _check("--length", length, length is None or length >= 0, "an integer >= 0")
        _check("--temperature", temperature, temperature is None or 0 <= temperature < math.inf,
               "a finite number >= 0")
        _check("--top-k", top_k, top_k is None or top_k >= 1, "an integer >= 1")
        _check("--seed", seed, seed is None or seed >= 0, "an integer >= 0")
        _check("--num", num, num >= 1, "an integer >= 1")
        cfg, vocab, model, _ = load_trained(checkpoint)
        unknown = vocab.unknown(prime)
        if unknown:
            raise ConfigError(f"--prime: characters not in the model's vocabulary: {', '.join(map(repr, unknown))}")
        s = cfg.sample
        rng = np.random.default_rng(seed)
        for _ in range(num):
            text = generate(model, vocab, prime,
                            s.length if length is None else length,
                            s.temperature if temperature is None else temperature,
                            s.top_k if top_k is None else top_k, rng)
            _write_stdout(prime + text + "\n")


def main() -> None:
    app(prog_name="charrnn")
