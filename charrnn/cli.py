"""The `charrnn` command: wiring only, one call per verb.

A CharrnnError becomes one `Error: ...` line on stderr and its exit code (2 usage/config, 1 runtime);
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

import typer
from typer.core import TyperGroup

from . import __version__, commands, datasets
from .commands.output import err_console
from .errors import CharrnnError, ConfigError

# click's UsageError, from whichever click typer ships with (newer typers vendor their own copy); typed as its
# subclass BadParameter, which has the same attributes
_UsageError = cast("type[typer.BadParameter]", typer.BadParameter.__bases__[0])


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
        err_console().print(f"Error: {err.format_message()} (see '{where} --help')", markup=False)
        raise typer.Exit(2) from None


app = typer.Typer(
    cls=_OneLineUsage,
    name="charrnn",
    help="Train a character-level stacked RNN (vanilla, LSTM or GRU) from a YAML config, sample text from it, "
    "and look inside it.",
    rich_markup_mode=None,
    no_args_is_help=True,
    add_completion=True,
    epilog="Exit codes: 0 ok, 1 runtime error (data, checkpoint, disk), 2 usage or config error, "
    "130 interrupted (143 on SIGTERM). Each verb's --help ends with an example.",
)


# a path or value holding a line break must not break the error's single line
_ONE_LINE = {ord(c): repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"charrnn {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print charrnn's version and exit."
    ),
) -> None:
    pass  # the options of `charrnn` itself, before any verb


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except CharrnnError as err:
        err_console().print(f"Error: {str(err).translate(_ONE_LINE)}", markup=False)
        raise typer.Exit(err.exit_code) from None


# a Dask address: [SCHEME://]HOST:PORT, HOST a name, an IPv4 address or a bracketed IPv6 one
_SCHEDULER = re.compile(r"([a-z+]+://)?(\[[0-9a-fA-F:.]+\]|[\w.-]+):\d{1,5}")


def _check(option: str, value, ok: bool, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{option}: expected {expected}, got {value!r}")


def _raw_option():
    """--raw, the same on every verb that loads a trained model."""
    return typer.Option(
        False, "--raw", help="Use the weights themselves, not the average a train.ema run kept beside them."
    )


@app.command()
def train(
    config: str = typer.Argument(..., help="YAML run config, e.g. configs/hello.yaml"),
    set_: list[str] = typer.Option(
        [], "--set", metavar="SECTION.KEY=VALUE", help="Override one config key; repeatable."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run directory's latest checkpoint."),
    force: bool = typer.Option(False, "--force", help="Start over in a run directory that holds a checkpoint."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary of the run on stdout."),
) -> None:
    """Train a model as CONFIG describes; checkpoints go to train.out_dir (default runs/<config stem>).

    Example: charrnn train configs/shakespeare.yaml --set train.steps=500
    """
    with _errors():
        code = commands.train.run(config, set_, resume, force, quiet, as_json)
    raise typer.Exit(code)


@app.command()
def sweep(
    sweep_file: str = typer.Argument(..., help="Sweep file: base config, space, search, pruner (docs/sweep.md)."),
    set_: list[str] = typer.Option(
        [],
        "--set",
        metavar="KEY=VALUE",
        help="Override a sweep key (samples=8) or a base config key of every trial (train.steps=300); repeatable.",
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Keep the finished trials; continue the unfinished ones from their checkpoints."
    ),
    force: bool = typer.Option(False, "--force", help="Start over in a folder that holds a sweep."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output, no leaderboard."),
    as_json: bool = typer.Option(False, "--json", help="One JSON line per trial on stdout, then a summary line."),
    scheduler: str | None = typer.Option(
        None,
        "--scheduler",
        metavar="ADDRESS",
        help="Run the trials on the workers of this Dask scheduler (tcp://HOST:PORT); default: a local cluster.",
    ),
) -> None:
    """Search a run config's keys for the lowest validation loss: Optuna picks and prunes, Dask runs the trials.

    Each trial is a run directory under out_dir/trials; at the end, a leaderboard and out_dir/best.yaml.
    Needs the sweep extra: pip install 'charrnn[sweep]'.

    \b
    Example:
      charrnn sweep configs/sweeps/shakespeare.yaml --set samples=8
    """
    with _errors():
        _check(
            "--scheduler",
            scheduler,
            scheduler is None or _SCHEDULER.fullmatch(scheduler) is not None,
            "an address as tcp://HOST:PORT",
        )
        code = commands.sweep.run(sweep_file, set_, resume, force, quiet, as_json, scheduler)
    raise typer.Exit(code)


@app.command()
def sample(
    checkpoint: str | None = typer.Option(
        None,
        "--checkpoint",
        "-c",
        metavar="PATH|RUN_DIR",
        help="Checkpoint JSON or run directory (its best checkpoint, else latest); default: newest under ./runs.",
    ),
    prime: str = typer.Option(
        "", "--prime", "-p", help="Text the sample starts with; - reads it from stdin (one final newline dropped)."
    ),
    length: int | None = typer.Option(None, "--length", "-n", help="Characters after the prime, at most."),
    temperature: float | None = typer.Option(None, "--temperature", "-t", help="0 is greedy argmax."),
    top_k: int | None = typer.Option(None, "--top-k", "-k", help="Sample among the K likeliest characters."),
    seed: int | None = typer.Option(
        None, "--seed", "-s", help="Seed of the first sample (sample i uses SEED + i); default: a fresh one."
    ),
    num: int = typer.Option(1, "--num", help="Number of samples, each on stdout ending with a newline."),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="One JSON object per sample and line: text, prime, seed, temperature, top_k, length, ended, log_prob, "
        "weights (ema or raw).",
    ),
    raw: bool = _raw_option(),
) -> None:
    """Print text sampled from a trained model on stdout: the prime, then its continuation.

    Stops at the end token or after --length characters; unset options take the run config's sample section.
    With --json each sample carries its seed: --seed with it draws that sample again.

    \b
    Examples:
      charrnn sample --checkpoint runs/shakespeare --prime "ROMEO:" --temperature 0.8
      echo "JULIET:" | charrnn sample --prime - --num 3 --json | jq -r .text
    """
    with _errors():
        _check("--length", length, length is None or length >= 0, "an integer >= 0")
        _check("--temperature", temperature, temperature is None or 0 <= temperature < math.inf, "a finite number >= 0")
        _check("--top-k", top_k, top_k is None or top_k >= 1, "an integer >= 1")
        _check("--seed", seed, seed is None or seed >= 0, "an integer >= 0")
        _check("--num", num, num >= 1, "an integer >= 1")
        commands.sample.run(checkpoint, prime, length, temperature, top_k, seed, num, as_json, raw)


@app.command()
def info(
    path: str | None = typer.Argument(
        None,
        metavar="[CHECKPOINT|RUN_DIR]",
        help="Checkpoint JSON or run directory (its latest); default: newest under ./runs.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the same as one JSON object."),
    raw: bool = typer.Option(
        False, "--raw", help="Report the weights themselves as used (weights_used), not a train.ema run's average."
    ),
) -> None:
    """Show what a checkpoint holds: config, vocabulary, parameters per matrix, step, losses, file format.

    \b
    Example:
      charrnn info runs/shakespeare --json | jq .total_parameters
    """
    with _errors():
        commands.info.run(path, as_json, raw)


@app.command()
def runs(
    root: str | None = typer.Argument(
        None, metavar="[FOLDER]", help="Where the run directories are; default ./runs (which may not exist yet)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array, one object per run."),
) -> None:
    """List the runs under ./runs (or FOLDER): model, step, best validation loss, age of the last checkpoint.

    \b
    Example:
      charrnn runs --json | jq -r '.[] | select(.best_val_loss < 1.5) | .run'
    """
    with _errors():
        commands.runs.run(root, as_json)


@app.command()
def plot(
    run_dir: str | None = typer.Argument(
        None, metavar="[RUN_DIR]", help="Run directory (or a checkpoint in it); default: newest under ./runs."
    ),
    png: str | None = typer.Option(
        None, "--png", metavar="FILE", help="Write a PNG instead (needs matplotlib: pip install 'charrnn[plot]')."
    ),
    height: int = typer.Option(16, "--height", help="Rows of the terminal chart."),
) -> None:
    """Draw a run's train and validation loss curves from its metrics.jsonl, in the terminal.

    \b
    Example:
      charrnn plot runs/shakespeare
    """
    with _errors():
        _check("--height", height, height >= 3, "an integer >= 3")
        commands.plot.run(run_dir, png, height)


@app.command()
def visualize(
    text: str = typer.Option(
        ..., "--text", metavar="TEXT|FILE", help="The text to read: a file's path, - for stdin, or the text itself."
    ),
    checkpoint_: str | None = typer.Option(
        None,
        "--checkpoint",
        "-c",
        metavar="PATH|RUN_DIR",
        help="Checkpoint JSON or run directory (its best, else latest); default: newest under ./runs.",
    ),
    layer: int | None = typer.Option(
        None, "--layer", "-l", help="Layer 1..L (default: the top one for --neuron; all for --top and --saturation)."
    ),
    neuron: int | None = typer.Option(None, "--neuron", help="Show this unit 0..H-1 of --layer."),
    top: int | None = typer.Option(
        None,
        "--top",
        help="Show the K units whose --show quantity best tracks each feature "
        "(inside quotes, inside parentheses, position in line); default 1.",
    ),
    show: str = typer.Option(
        "hidden",
        "--show",
        metavar="WHAT",
        help="What the colours show: hidden (h, any cell); lstm: cell (tanh(c)), input, forget, candidate (g), "
        "output; gru: reset, update, new. Sigmoid gates run 0 red .. 1 blue, the rest -1 red .. +1 blue.",
    ),
    predictions: bool = typer.Option(False, "--predictions", help="Under each character, the 5 likeliest next ones."),
    html_file: str | None = typer.Option(
        None, "--html", metavar="FILE", help="Write a self-contained HTML page instead."
    ),
    saturation: bool = typer.Option(
        False,
        "--saturation",
        help="Instead of coloured text, how often each unit's sigmoid gates (lstm: input, forget, output; gru: "
        "reset, update) are left-saturated (< 0.1) and right-saturated (> 0.9), per layer.",
    ),
    as_json: bool = typer.Option(
        False, "--json", help='With --saturation: print {"cell", "characters", "layers": [...]} as JSON.'
    ),
    png: str | None = typer.Option(
        None,
        "--png",
        metavar="FILE",
        help="With --saturation: write a scatter per layer as a PNG (needs matplotlib: pip install 'charrnn[plot]').",
    ),
    raw: bool = _raw_option(),
) -> None:
    """Colour each character of a text by one unit's activation (tanh, -1 red .. +1 blue), or summarise gates.

    \b
    Examples:
      charrnn visualize -c runs/code --text charrnn/model.py --top 2
      charrnn visualize --text "ROMEO: But soft, what light through yonder window breaks?" --neuron 17 --predictions
      charrnn visualize -c runs/code-lstm --text charrnn/vocab.py --show forget --top 1
      charrnn visualize -c runs/code-lstm --text charrnn/vocab.py --saturation --png gates.png
    """
    with _errors():
        commands.visualize.run(
            text, checkpoint_, layer, neuron, top, predictions, html_file, show, saturation, as_json, png, raw
        )


@app.command()
def gradients(
    checkpoints: list[str] = typer.Option(
        [],
        "--checkpoint",
        "-c",
        metavar="PATH|RUN_DIR",
        help="Checkpoint JSON or run directory (its best, else latest); repeatable, one chart; "
        "default: newest under ./runs.",
    ),
    text: str | None = typer.Option(
        None,
        "--text",
        metavar="FILE|-",
        help="The text the chains are taken from; - reads stdin; default: each run's validation split "
        "(its whole data.path when it holds none out).",
    ),
    steps: int = typer.Option(50, "--steps", "-k", help="How far back to measure: k = 0..K steps."),
    as_json: bool = typer.Option(
        False,
        "--json",
        help='Print {"steps", "chains" (at most), "runs": [{"run", "cell", "text", "weights", "chains", "warmup", '
        '"layers": [{"layer", "mean_norm" (K+1 numbers)}]}]} as JSON.',
    ),
    png: str | None = typer.Option(
        None, "--png", metavar="FILE", help="Write a PNG instead (needs matplotlib: pip install 'charrnn[plot]')."
    ),
    raw: bool = _raw_option(),
) -> None:
    """How far back the gradient reaches: the mean norm of dL_t/dh_(t-k) for k = 0..K, per layer, log scale.

    L_t is the loss of predicting the character after position t; the mean is over up to 64 positions t
    spread over the text, each read from a zero state through 50 characters of warm-up first. A vanilla
    cell's gradient vanishes within a few dozen steps; an LSTM's carries further (docs/model.md).

    \b
    Example:
      charrnn gradients -c runs/shakespeare-128 -c runs/shakespeare-lstm --steps 30
    """
    with _errors():
        _check("--steps", steps, steps >= 1, "an integer >= 1")
        commands.gradients.run(checkpoints, text, steps, as_json, png, raw)


data_app = typer.Typer(help="Training texts: download a public one.", rich_markup_mode=None, no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("get")
def data_get(
    name: str = typer.Argument(..., metavar="NAME", help=f"One of: {', '.join(datasets.DATASETS)}."),
    to: str = typer.Option("data", "--to", metavar="FOLDER", help="Where to save it."),
    url: str | None = typer.Option(
        None,
        "--url",
        help="Download from this address instead (a mirror, a local "
        "server); the published sha256 is checked all the same.",
    ),
) -> None:
    """Download a public training text, check its sha256, save it atomically, and print its path.

    \b
    Example:
      charrnn data get tinyshakespeare && charrnn train configs/shakespeare.yaml
    """
    with _errors():
        commands.data.get(name, to, url)


@app.command("eval")
def eval_(
    file: str | None = typer.Argument(
        None, metavar="[FILE|-]", help="Text to score; - reads stdin; default: the run's validation split."
    ),
    checkpoint: str | None = typer.Option(
        None,
        "--checkpoint",
        "-c",
        metavar="PATH|RUN_DIR",
        help="Checkpoint JSON or run directory (its best checkpoint, else latest); default: newest under ./runs.",
    ),
    as_json: bool = typer.Option(False, "--json", help='Print {"loss", "bpc", "tokens", "weights", ...} as JSON.'),
    skip_unknown: bool = typer.Option(
        False, "--skip-unknown", help="Drop characters the model has never seen (counted on stderr)."
    ),
    novelty_chars: int = typer.Option(
        0,
        "--novelty",
        metavar="N",
        help="Also sample N characters and report the share of their n-grams absent from the training text.",
    ),
    temperature: float | None = typer.Option(None, "--temperature", "-t", help="Sampling temperature for --novelty."),
    seed: int = typer.Option(0, "--seed", "-s", help="Seed of the --novelty sample."),
    raw: bool = _raw_option(),
) -> None:
    """Mean negative log-likelihood of a text under a trained model, in nats per token and bits per char.

    The hidden state is carried through the whole text, split into records as the model was trained.
    Example: charrnn eval --checkpoint runs/shakespeare --json
    """
    with _errors():
        _check("--novelty", novelty_chars, novelty_chars >= 0, "a number of characters >= 0")
        _check("--temperature", temperature, temperature is None or temperature >= 0, "a number >= 0")
        _check("--seed", seed, seed >= 0, "an integer >= 0")
        commands.eval.run(checkpoint, file, as_json, skip_unknown, novelty_chars, temperature, seed, raw)


def main() -> None:
    try:
        try:
            app(prog_name="charrnn")
        finally:
            sys.stdout.flush()  # here, not at interpreter exit, where a closed pipe prints "Exception ignored"
    except BrokenPipeError:
        # the reader left (`| head`): stop quietly, and keep the final flush from writing again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
