"""The `charrnn` command: wiring only, one call per verb.

A CharrnnError becomes one `Error: ...` line on stderr and its exit code (2 usage/config, 1 runtime);
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import math
import signal
import sys
from contextlib import contextmanager
from typing import Iterator, List, Optional

import numpy as np
import typer
from rich.console import Console

from .assess import assess
from .errors import CharrnnError, ConfigError
from .progress import Reporter
from .run import load_trained, stop_on_signals, train_run
from .sample import sample as generate

app = typer.Typer(
    name="charrnn",
    help="Train a character-level stacked vanilla RNN from a YAML config, and sample text from it.",
    rich_markup_mode=None,
    no_args_is_help=True,
    add_completion=True,
)


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)  # looked up per call: runners capture it


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except CharrnnError as err:
        _err().print(f"Error: {err}", markup=False)
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
            except KeyboardInterrupt:
                reporter.close()
                _err().print("interrupted again: stopped at once; the last complete checkpoint is intact")
                raise typer.Exit(130) from None
            finally:
                reporter.close()
    err = _err()
    if as_json:
        bits = {f"{k}_bits_per_char": summary[k] / math.log(2) if summary[k] is not None else None
                for k in ("train_loss", "val_loss", "best_val_loss")}
        sys.stdout.write(json.dumps({**summary, **bits}) + "\n")
    if summary["interrupted"]:
        err.print(f"interrupted at step {summary['step']}; checkpoint saved in {summary['run_dir']}")
        err.print(f"resume with: charrnn train {config} --resume")
        raise typer.Exit(143 if received and received[0] == signal.SIGTERM else 130)
    if not quiet:
        val = summary["best_val_loss"]
        best = f", best val loss {val:.4f} at step {summary['best_step']}" if val is not None else ""
        why = {"max_seconds": " (stopped: train.max_seconds reached)",
               "early_stop": " (stopped early: no new best val loss in train.early_stop_patience validations)",
               }.get(summary["stop_reason"], "")
        train_loss = "-" if summary["train_loss"] is None else f"{summary['train_loss']:.4f}"
        err.print(f"done: {summary['step']} steps{why}, train loss {train_loss}{best}; "
                  f"run directory {summary['run_dir']}")


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
        _check("--temperature", temperature, temperature is None or temperature >= 0, "a number >= 0")
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
            sys.stdout.write(prime + text + "\n")
        sys.stdout.flush()


@app.command("eval")
def eval_(
    file: Optional[str] = typer.Argument(
        None, metavar="[FILE|-]", help="Text to score; - reads stdin; default: the run's validation split."),
    checkpoint: Optional[str] = typer.Option(
        None, "--checkpoint", "-c", metavar="PATH|RUN_DIR",
        help="Checkpoint JSON or run directory (its best checkpoint, else latest); default: newest under ./runs."),
    as_json: bool = typer.Option(False, "--json", help='Print {"loss", "bpc", "tokens", ...} as JSON.'),
    skip_unknown: bool = typer.Option(
        False, "--skip-unknown", help="Drop characters the model has never seen (counted on stderr)."),
    novelty_chars: int = typer.Option(
        0, "--novelty", metavar="N",
        help="Also sample N characters and report the share of their n-grams absent from the training text."),
    temperature: Optional[float] = typer.Option(None, "--temperature", "-t", help="Sampling temperature for --novelty."),
    seed: int = typer.Option(0, "--seed", "-s", help="Seed of the --novelty sample."),
) -> None:
    """Mean negative log-likelihood of a text under a trained model, in nats per token and bits per char.

    The hidden state is carried through the whole text, split into records as the model was trained.
    Example: charrnn eval --checkpoint runs/shakespeare --json
    """
    with _errors():
        _check("--novelty", novelty_chars, novelty_chars >= 0, "a number of characters >= 0")
        _check("--temperature", temperature, temperature is None or temperature >= 0, "a number >= 0")
        _check("--seed", seed, seed >= 0, "an integer >= 0")
        result = assess(checkpoint, file, skip_unknown, novelty_chars, temperature, seed)
    if result["skipped"]:
        listed = ", ".join(f"{c!r} ({n}x)" for c, n in result["skipped"].items())
        _err().print(f"skipped {sum(result['skipped'].values())} characters not in the vocabulary: {listed}",
                     markup=False)
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    sys.stdout.write(f"loss {result['loss']:.4f} nats/token  {result['bpc']:.4f} bits/char  "
                     f"{result['tokens']} tokens  ({result['text']}, step {result['step']})\n")
    novel = result.get("novelty")
    if novel:
        def shares(by_n):
            return "  ".join(f"{n}-grams {share:.3f}" for n, share in by_n.items() if share is not None)

        sys.stdout.write(f"novel n-grams in {novel['sample_chars']} sampled chars: {shares(novel['sample'])}\n")
        if novel["held_out"]:
            sys.stdout.write(f"novel n-grams in as much held-out text: {shares(novel['held_out'])}\n")


def main() -> None:
    app(prog_name="charrnn")
