"""charrnn against torch.nn.RNN(nonlinearity='tanh'), nn.LSTM or nn.GRU + nn.Linear, trained the same way.

Same id streams (charrnn's load_corpus and tracks), split, sizes, cell, window, batch, optimizer, clipping,
learning-rate schedule and initial weights (torch starts from a copy of charrnn's). Prints the
validation loss of both, in nats and bits/char, (1) after the same number of steps and (2) after the
same wall-clock training time, with the loss curves. The final losses are `charrnn eval`'s: the state
carried through the whole validation text; the curves use batch_size tracks, as training validates.
--seeds N races N times, with train.seed = the recipe's seed (0) + 0..N-1, and adds the mean of each.

    python bench/quality.py --sizes 2x128 --steps 2000 --seconds 300
    python bench/quality.py --sizes 2x512 --steps 500 --seconds 0

The gated cells' check (mean of 2 seeds within +0.01 nats of torch at 3,000 steps), once per cell:

    python bench/quality.py --cell lstm --sizes 2x128 --steps 3000 --seconds 0 --seeds 2
    python bench/quality.py --cell gru --sizes 2x128 --steps 3000 --seconds 0 --seeds 2

Progress goes to stderr; the tables and curves to stdout. Needs torch (pip install torch, CPU build).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "bench" / "quality.yaml"), help="the recipe both follow")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override the recipe")
    p.add_argument("--data", default=None, help="text to train on (default: the config's data.path)")
    p.add_argument("--sizes", default="2x128", help="comma-separated LxH, e.g. 2x128,2x512")
    p.add_argument("--steps", type=int, default=2000, help="updates in the equal-steps race (0: skip it)")
    p.add_argument("--seconds", type=float, default=300, help="training seconds in the equal-time race (0: skip)")
    p.add_argument("--every", type=int, default=100, help="steps between points of the loss curves")
    p.add_argument("--threads", type=int, default=2, help="threads of numpy's BLAS and of torch")
    p.add_argument("--cell", choices=("rnn", "lstm", "gru"), default="rnn", help="model.cell, and nn.RNN/LSTM/GRU")
    p.add_argument("--seeds", type=int, default=1, help="races per size, train.seed + 0..N-1, and their mean")
    p.add_argument(
        "--torch-two-biases",
        action="store_true",
        help="train torch's b_hh as well as b_ih, as a plain nn.RNN does (default: b_hh fixed at 0)",
    )
    return p.parse_args()


args = parse_args()
# before numpy loads its BLAS: both frameworks get the same number of threads
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from charrnn.config import load_config  # noqa: E402
from charrnn.data import Corpus, load_corpus, make_tracks, window, windows_per_epoch  # noqa: E402
from charrnn.evaluation import EVAL_WINDOW, mean_nll  # noqa: E402
from charrnn.model import StackedRNN  # noqa: E402
from charrnn.optim import learning_rate  # noqa: E402
from charrnn.training import new_state, train  # noqa: E402
from charrnn.vocab import BOS  # noqa: E402

torch.set_num_threads(args.threads)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---- charrnn: its own training loop, snapshots of the weights taken by the save callback


def run_charrnn(cfg, corpus, steps: int, seconds: float) -> list[tuple[int, float, dict]]:
    """Train with charrnn.training.train; returns (step, training seconds, params) every args.every steps."""
    race = replace(cfg, train=replace(cfg.train, steps=steps, max_seconds=seconds, checkpoint_every=args.every))
    state = new_state(race, corpus.vocab.size)
    snapshots = [(0, 0.0, {k: v.copy() for k, v in state.model.params.items()})]
    started = time.perf_counter()

    def save(s, kinds):
        if s.step != snapshots[-1][0]:
            snapshots.append((s.step, time.perf_counter() - started, {k: v.copy() for k, v in s.model.params.items()}))

    # no validation set: validating would count as training time; the snapshots are scored afterwards
    train(race, Corpus(corpus.vocab, corpus.train, corpus.val[:0]), state, save)
    return snapshots


# ---- torch: the same network, data order, optimizer, clipping and schedule


def torch_model(cfg, params: dict):
    """nn.RNN, nn.LSTM or nn.GRU + nn.Linear holding a copy of charrnn's initial weights (gate rows in
    torch's order, as charrnn keeps them): b_ih carries b_h, b_hh is 0, but for the GRU's n rows, b_hn.

    b_hh stays 0 unless --torch-two-biases: trained, the pair b_ih + b_hh is one bias that Adam moves
    twice as fast and that global-norm clipping counts twice, which is not charrnn's (or char-rnn's) math.
    The GRU's b_hn sits inside r's product, so its rows of b_hh train; a hook zeroes the r and z rows'
    gradient, which leaves them at 0 under Adam and out of the clipping norm.
    """
    L, H, cell = cfg.model.num_layers, cfg.model.hidden_size, cfg.model.cell
    V = params["W_xh"].shape[1]
    dropout = cfg.model.dropout if L > 1 else 0.0
    rnn = {
        "rnn": lambda: torch.nn.RNN(V, H, L, nonlinearity="tanh", dropout=dropout),
        "lstm": lambda: torch.nn.LSTM(V, H, L, dropout=dropout),
        "gru": lambda: torch.nn.GRU(V, H, L, dropout=dropout),
    }[cell]()
    out = torch.nn.Linear(H, V)
    with torch.no_grad():
        for l in range(1, L + 1):
            getattr(rnn, f"weight_ih_l{l - 1}").copy_(torch.from_numpy(params["W_xh" if l == 1 else f"W_hhd.{l}"]))
            getattr(rnn, f"weight_hh_l{l - 1}").copy_(torch.from_numpy(params[f"W_hht.{l}"]))
            getattr(rnn, f"bias_ih_l{l - 1}").copy_(torch.from_numpy(params[f"b_h.{l}"]))
            b_hh = getattr(rnn, f"bias_hh_l{l - 1}")
            b_hh.zero_()
            if cell == "gru":
                b_hh[2 * H :] = torch.from_numpy(params[f"b_hn.{l}"])
                if not args.torch_two_biases:
                    only_n = torch.cat([torch.zeros(2 * H), torch.ones(H)])  # (3H,) r, z, n
                    b_hh.register_hook(lambda grad, only_n=only_n: grad * only_n)
            else:
                b_hh.requires_grad_(args.torch_two_biases)
        out.weight.copy_(torch.from_numpy(params["W_hy"]))
        out.bias.copy_(torch.from_numpy(params["b_y"]))
    return rnn, out


def torch_optimizer(cfg, parameters):
    t = cfg.train
    return {
        "adam": lambda: torch.optim.Adam(parameters, lr=t.learning_rate, eps=1e-8),
        "sgd": lambda: torch.optim.SGD(parameters, lr=t.learning_rate, momentum=t.momentum),
        "rmsprop": lambda: torch.optim.RMSprop(parameters, lr=t.learning_rate, alpha=0.99, eps=1e-8),
        "adagrad": lambda: torch.optim.Adagrad(parameters, lr=t.learning_rate, eps=1e-8),
    }[t.optimizer]()


def run_torch(cfg, corpus, init: dict, steps: int, seconds: float):
    """The loop of charrnn.training for torch; returns (step, training seconds, state_dicts) like run_charrnn."""
    t, V = cfg.train, corpus.vocab.size
    T, B = t.seq_length, t.batch_size
    rnn, out = torch_model(cfg, init)
    dropout = torch.nn.Dropout(cfg.model.dropout)  # charrnn drops the top layer's output too
    parameters = [p for p in [*rnn.parameters(), *out.parameters()] if p.requires_grad]
    opt = torch_optimizer(cfg, parameters)
    tracks = make_tracks(corpus.train, B, T)
    per_epoch = windows_per_epoch(tracks, T)
    h0 = torch.zeros(cfg.model.num_layers, B, cfg.model.hidden_size)  # (L, B, H)
    h = (h0, h0.clone()) if cfg.model.cell == "lstm" else h0  # the LSTM carries (h, c)

    def snapshot():
        return [p.detach().numpy().copy() for p in parameters]

    snapshots = [(0, 0.0, snapshot())]
    started, step, k = time.perf_counter(), 0, 0
    rnn.train()
    while step < steps and not (seconds and time.perf_counter() - started >= seconds):
        x, y = window(tracks, k, T)
        inputs = torch.nn.functional.one_hot(torch.from_numpy(x).long(), V).float()  # (T, B, V)
        hidden, h = rnn(inputs, h)
        logits = out(dropout(hidden)).reshape(T * B, V)
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y).long().reshape(-1))
        opt.zero_grad()
        loss.backward()
        if t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(parameters, t.grad_clip)
        for group in opt.param_groups:
            group["lr"] = learning_rate(t, step)
        opt.step()
        # truncated BPTT: the state carries on, its gradient stops here
        h = tuple(s.detach() for s in h) if isinstance(h, tuple) else h.detach()
        step, k = step + 1, k + 1
        if k == per_epoch:
            k, h = 0, tuple(torch.zeros_like(s) for s in h) if isinstance(h, tuple) else torch.zeros_like(h)
        if step % args.every == 0:
            snapshots.append((step, time.perf_counter() - started, snapshot()))
    if snapshots[-1][0] != step:
        snapshots.append((step, time.perf_counter() - started, snapshot()))
    return snapshots


def torch_nll(rnn, out, ids: np.ndarray, num_tracks: int, chunk: int) -> float:
    """charrnn.evaluation.mean_nll for the torch model: same tracks, pads and scored targets."""
    inputs, targets = ids[:-1], ids[1:]
    B = min(num_tracks, len(targets))
    n = -(-len(targets) // B)
    pad = B * n - len(targets)
    X = np.concatenate([inputs, np.full(pad, BOS, inputs.dtype)]).reshape(B, n)
    Y = np.concatenate([targets, np.zeros(pad, targets.dtype)]).reshape(B, n)
    W = np.concatenate([targets != BOS, np.zeros(pad, bool)]).reshape(B, n)
    V = out.weight.shape[0]
    total, h = 0.0, None
    rnn.eval()
    with torch.no_grad():
        for s in range(0, n, chunk):
            x = torch.nn.functional.one_hot(torch.from_numpy(X[:, s : s + chunk].T).long(), V).float()
            hidden, h = rnn(x, h)
            logp = torch.log_softmax(out(hidden).double(), -1)  # (T, B, V)
            picked = logp.gather(2, torch.from_numpy(Y[:, s : s + chunk].T).long()[..., None])[..., 0]
            total -= float((picked * torch.from_numpy(W[:, s : s + chunk].T)).sum())
    return total / int(W.sum())


# ---- scoring, tables, curves


def score(cfg, corpus, kind: str, snapshots, init: dict):
    """[(step, seconds, curve val loss)] and the final loss with the state carried through the text."""
    T, B = cfg.train.seq_length, cfg.train.batch_size
    curve = []
    if kind == "charrnn":
        model = StackedRNN(corpus.vocab.size, cfg.model.hidden_size, cfg.model.num_layers, cell=cfg.model.cell)
        for step, sec, params in snapshots:
            for name, value in params.items():
                model.params[name][...] = value
            curve.append((step, sec, mean_nll(model, corpus.val, B, T)[0]))
        return curve, mean_nll(model, corpus.val, 1, EVAL_WINDOW)[0]
    rnn, out = torch_model(cfg, init)
    parameters = [p for p in [*rnn.parameters(), *out.parameters()] if p.requires_grad]
    for step, sec, values in snapshots:
        with torch.no_grad():
            for p, v in zip(parameters, values):
                p.copy_(torch.from_numpy(v))
        curve.append((step, sec, torch_nll(rnn, out, corpus.val, B, T)))
    return curve, torch_nll(rnn, out, corpus.val, 1, EVAL_WINDOW)


def plot(series: dict[str, list[tuple[float, float]]], xlabel: str, width: int = 64, height: int = 14) -> str:
    """An ASCII chart of val loss against x; each series drawn with its name's first letter."""
    points = [p for s in series.values() for p in s]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs) or 1
    y0, y1 = min(ys), min(max(ys), min(ys) + 1.5)  # the first steps' ~4.2 nats would flatten the rest
    grid = [[" "] * width for _ in range(height)]
    for name, s in series.items():
        for x, y in s:
            col = round((x - x0) / max(x1 - x0, 1e-9) * (width - 1))
            row = round((y1 - min(y, y1)) / max(y1 - y0, 1e-9) * (height - 1))
            cell = grid[row][col]
            grid[row][col] = name[0] if cell in (" ", name[0]) else "*"
    lines = [f"{y1 - (y1 - y0) * r / (height - 1):6.3f} |" + "".join(row) for r, row in enumerate(grid)]
    lines.append(" " * 7 + "+" + "-" * width)
    lines.append(" " * 8 + f"{x0:<10g}{xlabel:^{width - 20}}{x1:>10g}")
    lines.append(" " * 8 + "  ".join(f"{name[0]} = {name}" for name in series) + "  (* both)")
    return "\n".join(lines)


def race(cfg, corpus, steps: int, seconds: float) -> dict:
    init = StackedRNN(
        corpus.vocab.size,
        cfg.model.hidden_size,
        cfg.model.num_layers,
        seed=cfg.train.seed,
        init=cfg.model.init,
        init_scale=cfg.model.init_scale,
        cell=cfg.model.cell,
    ).params
    # each in a fresh process: torch's OpenMP threads and numpy's OpenBLAS threads, left spinning in
    # one process, slow the other framework down by an order of magnitude
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        ours = pool.submit(run_charrnn, cfg, corpus, steps, seconds).result()
    log(f"  charrnn: {ours[-1][0]} steps in {ours[-1][1]:.1f} s")
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        theirs = pool.submit(run_torch, cfg, corpus, init, steps, seconds).result()
    log(f"  torch:   {theirs[-1][0]} steps in {theirs[-1][1]:.1f} s")
    return {"charrnn": score(cfg, corpus, "charrnn", ours, init), "torch": score(cfg, corpus, "torch", theirs, init)}


def table(title: str, result: dict) -> str:
    rows = [f"{title}", "", "| | steps | train seconds | val loss (nats) | bits/char |", "|---|---|---|---|---|"]
    for name, (curve, final) in result.items():
        step, sec, _ = curve[-1]
        rows.append(f"| {name} | {step} | {sec:.1f} | {final:.4f} | {final / math.log(2):.4f} |")
    diff = result["charrnn"][1] - result["torch"][1]
    rows.append(f"\ncharrnn - torch: {diff:+.4f} nats")
    return "\n".join(rows)


def mean_table(title: str, seeds: list[int], results: list[dict]) -> str:
    """Each seed's final val loss and their mean, for both."""
    head = " | ".join(f"seed {seed}" for seed in seeds)
    rows = [title, "", f"| | {head} | mean (nats) | bits/char |", "|---|" + "---|" * (len(seeds) + 2)]
    means = {}
    for name in results[0]:
        finals = [result[name][1] for result in results]
        means[name] = sum(finals) / len(finals)
        each = " | ".join(f"{final:.4f}" for final in finals)
        rows.append(f"| {name} | {each} | {means[name]:.4f} | {means[name] / math.log(2):.4f} |")
    rows.append(f"\ncharrnn - torch, mean of {len(seeds)} seeds: {means['charrnn'] - means['torch']:+.4f} nats\n")
    return "\n".join(rows)


def races(cfg, corpus, steps: int, seconds: float, title: str, x: str) -> None:
    """Race once per seed, printing each result and its curves, then the mean over the seeds."""
    seeds = [cfg.train.seed + i for i in range(args.seeds)]
    results = []
    for seed in seeds:
        result = race(replace(cfg, train=replace(cfg.train, seed=seed)), corpus, steps, seconds)
        results.append(result)
        print(table(title + (f", seed {seed}" if args.seeds > 1 else ""), result))
        at = 0 if x == "step" else 1  # which of (step, seconds, loss) the curves run along
        curves = {k: [(point[at], point[2]) for point in curve] for k, (curve, _) in result.items()}
        print("\n```\n" + plot(curves, x) + "\n```\n", flush=True)
    if args.seeds > 1:
        print(mean_table(f"{title}, mean of {args.seeds} seeds", seeds, results), flush=True)


def main() -> None:
    overrides = list(args.set) + ([f"data.path={Path(args.data).resolve()}"] if args.data else [])
    for size in args.sizes.split(","):
        L, H = (int(v) for v in size.lower().split("x"))
        sizes = [f"model.num_layers={L}", f"model.hidden_size={H}", f"model.cell={args.cell}"]
        cfg = load_config(args.config, overrides + sizes)
        if cfg.data.records != "file" or cfg.train.lr_schedule == "plateau":
            sys.exit(
                "bench/quality.py: needs data.records: file (torch's cells cannot restart at <s>) "
                "and a schedule without validation feedback (not plateau)"
            )
        corpus = load_corpus(cfg.data)
        t = cfg.train
        # the default schedule is "step" with lr_decay 1: say what it does
        schedule = "constant" if t.lr_schedule in ("step", "exponential") and t.lr_decay == 1 else t.lr_schedule
        print(
            f"## {L} x {H} on {Path(cfg.data.path).name}: cell {cfg.model.cell}, "
            f"T={t.seq_length} B={t.batch_size} {t.optimizer} "
            f"lr {t.learning_rate:g} ({schedule}) clip {t.grad_clip:g} init {cfg.model.init} "
            f"dropout {cfg.model.dropout:g}, {args.threads} threads, torch {torch.__version__}"
            f"{' (b_ih and b_hh trained)' if args.torch_two_biases else ''}\n"
        )
        if args.steps:
            log(f"{size} {cfg.model.cell}: equal steps ({args.steps})")
            races(cfg, corpus, args.steps, 0.0, f"### equal steps: {args.steps}", "step")
        if args.seconds:
            log(f"{size} {cfg.model.cell}: equal wall-clock ({args.seconds:g} s), charrnn then torch, back to back")
            races(cfg, corpus, 10**9, args.seconds, f"### equal wall-clock: {args.seconds:g} s of training", "seconds")


if __name__ == "__main__":
    main()
