"""The verbs: `charrnn X` lives in `commands/X.py`, a thin layer over the engine in `charrnn/`.

Each module's `run(...)` takes plain values that `charrnn/cli.py` has parsed, calls the engine, and
writes the result: data on stdout, everything else on stderr. A verb that can stop short returns its
exit code; failures are raised as `CharrnnError`, which the command line turns into one line.
"""

from . import data, eval, gradients, info, plot, runs, sample, sweep, train, visualize

__all__ = ["data", "eval", "gradients", "info", "plot", "runs", "sample", "sweep", "train", "visualize"]
