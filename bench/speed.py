"""charrnn beside torch.nn.RNN on this machine: training, sampling and scale, in one table.

    python bench/speed.py              # the table on stdout (about 10 minutes on 2 cores)
    python bench/speed.py --json       # the same numbers as JSON on stdout, the table on stderr
    python bench/speed.py --quick      # fewer repeats and a 20 MB scale test: a smoke run

Needs the `bench` extra (`pip install -e '.[bench]'`: threadpoolctl) and torch (CPU build).
Method: every number is a median over repeated runs; charrnn and torch runs alternate, so both see
the same machine load, and each ratio comes from the same invocation. Each run times whole training
windows (forward, backward, clipping at 5, Adam) after warm-up windows, on Tiny Shakespeare's ids
(vocabulary 67) when ../shared/data/tinyshakespeare.txt is there, else on random ids.
Model FLOPs per character are 6 x the weights used in products (L H^2 + (L-1) H^2 + H V): forward,
and two gradient products back; layer 1's input is a row gather for charrnn and is not counted.
Thread counts are set with threadpoolctl (numpy's BLAS) and torch.set_num_threads, and in the
environment of every subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from charrnn.data import encode_records, make_tracks, read_text, split_records, window
from charrnn.model import StackedRNN
from charrnn.optim import Adam, clip_grad_norm
from charrnn.sample import sample
from charrnn.vocab import EOS, Vocab

try:
    import torch
except ImportError:  # the table still runs; torch columns stay empty
    torch = None

ROOT = Path(__file__).resolve().parents[1]
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
CONFIGS = {  # name: (layers, hidden, seq_length, batch_size)
    "a": (1, 100, 25, 1),  # min-char-rnn
    "b": (2, 128, 50, 50),  # char-rnn's defaults
    "c": (2, 512, 50, 50),
    "d": (3, 512, 100, 64),
}
LR, CLIP = 2e-3, 5.0


def log(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


def flops_per_char(L: int, H: int, V: int) -> int:
    return 6 * (L * H * H + (L - 1) * H * H + H * V)


def corpus_ids() -> tuple[np.ndarray, Vocab]:
    """Tiny Shakespeare as charrnn encodes it (one record), or random ids over 65 characters."""
    if SHAKESPEARE.is_file():
        records = split_records(read_text(SHAKESPEARE), "file")
    else:
        rng = np.random.default_rng(0)
        records = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,;:!?'-\n&$3"),
                                      1_000_000))]
    vocab = Vocab.from_texts(records)
    return encode_records(records, vocab), vocab


# ---------------------------------------------------------------- timing

def run_rate(step, chars_per_call: int, seconds: float, start: int) -> tuple[float, int]:
    """chars/s over whole calls lasting about `seconds`; returns the rate and the next window index."""
    n, began = 0, time.perf_counter()
    while True:
        step(start + n)
        n += 1
        elapsed = time.perf_counter() - began
        if elapsed >= seconds and n >= 2:
            return n * chars_per_call / elapsed, start + n


def alternate(steps: dict, chars_per_call: int, repeats: int, seconds: float, warmup: int) -> dict[str, list[float]]:
    """Rates of each contender, their runs interleaved a, b, a, b, ..."""
    at = {k: 0 for k in steps}
    for k, step in steps.items():
        for i in range(warmup):
            step(i)
        at[k] = warmup
    rates = {k: [] for k in steps}
    for _ in range(repeats):
        for k, step in steps.items():
            r, at[k] = run_rate(step, chars_per_call, seconds, at[k])
            rates[k].append(r)
    return rates


def spread(values: list[float]) -> float:
    """max / min of the runs: how noisy the machine was."""
    return max(values) / min(values) if values and min(values) > 0 else float("nan")


def gemm_peak(M: int, K: int, N: int, repeats: int) -> float:
    """Best float32 (M, K) x (K, N) GFLOP/s over `repeats` timed batches of products."""
    rng = np.random.default_rng(0)
    a, b = rng.random((M, K), dtype=np.float32), rng.random((N, K), dtype=np.float32).T
    out = np.empty((M, N), np.float32)
    flops = 2 * M * K * N
    calls = max(3, int(2e9 / flops))  # about 10-20 ms a batch at this machine's peak
    best = 0.0
    np.matmul(a, b, out=out)
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(calls):
            np.matmul(a, b, out=out)
        best = max(best, calls * flops / (time.perf_counter() - t) / 1e9)
    return best


# ---------------------------------------------------------------- contenders

def tracks_of(ids: np.ndarray, B: int, T: int) -> np.ndarray:
    return make_tracks(ids, B, T)  # (B, n) as charrnn train cuts them


def charrnn_trainer(L, H, T, B, ids, V):
    """One training window as charrnn's loop runs it: window, loss_and_grads, clip, Adam."""
    tracks = tracks_of(ids, B, T)
    per_epoch = (tracks.shape[1] - 1) // T
    model = StackedRNN(V, H, L)
    opt = Adam(model.params)
    state = {"h": model.zero_state(B)}

    def step(k):
        inputs, targets = window(tracks, k % per_epoch, T)
        loss, grads, state["h"] = model.loss_and_grads(inputs, targets, state["h"])
        clip_grad_norm(grads, CLIP)
        opt.step(model.params, grads, LR)

    return step


def torch_trainer(L, H, T, B, ids, V):
    """The same window in torch: nn.RNN(tanh) on one-hot input, nn.Linear, cross-entropy, clipping,
    Adam (fused=True, its fastest CPU variant here), state carried between windows."""
    tracks = torch.from_numpy(tracks_of(ids, B, T).astype(np.int64))
    per_epoch = (tracks.shape[1] - 1) // T
    torch.manual_seed(0)
    rnn, out_layer = torch.nn.RNN(V, H, L, nonlinearity="tanh"), torch.nn.Linear(H, V)
    params = list(rnn.parameters()) + list(out_layer.parameters())
    opt = torch.optim.Adam(params, lr=LR, fused=True)
    state = {"h": torch.zeros(L, B, H)}

    def step(k):
        start = (k % per_epoch) * T
        x, y = tracks[:, start:start + T].T, tracks[:, start + 1:start + T + 1].T
        opt.zero_grad(set_to_none=True)
        out, h = rnn(torch.nn.functional.one_hot(x, V).float(), state["h"])
        loss = torch.nn.functional.cross_entropy(out_layer(out).reshape(-1, V), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()
        state["h"] = h.detach()

    return step


def cli_rate(name: str, threads: int, data: Path, work: Path, seconds: float, expect: float) -> float:
    """chars/s that `charrnn train --json` reports for a run of about `seconds` (estimated from `expect`)."""
    L, H, T, B = CONFIGS[name]
    steps = max(5, int(seconds * expect / (T * B)))
    overrides = {
        "data.path": data, "data.val_fraction": 0, "model.num_layers": L, "model.hidden_size": H,
        "train.seq_length": T, "train.batch_size": B, "train.steps": steps, "train.eval_every": steps,
        "train.checkpoint_every": steps, "train.log_every": steps, "train.out_dir": work / f"run-{name}",
    }
    config = work / "bench.yaml"
    config.write_text("data:\n  records: file\n")
    args = [sys.executable, "-m", "charrnn", "train", str(config), "--force", "--quiet", "--json"]
    for k, v in overrides.items():
        args += ["--set", f"{k}={v}"]
    out = subprocess.run(args, capture_output=True, text=True, env=thread_env(threads), check=True)
    return json.loads(out.stdout)["chars_per_sec"]


def thread_env(threads: int) -> dict:
    return {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads)}


# ---------------------------------------------------------------- sections

def training(threads_list, names, ids, V, args) -> tuple[list[dict], dict]:
    rows, peaks = [], {}
    for threads in threads_list:
        if torch is not None:
            torch.set_num_threads(threads)
        with threadpool_limits(threads, user_api="blas"):
            peaks[threads] = {"1024": gemm_peak(1024, 1024, 1024, args.repeats)}
            for name in names:
                L, H, T, B = CONFIGS[name]
                log(f"training ({name}) {L}x{H} seq {T} batch {B}, {threads} thread(s)")
                small = gemm_peak(B, H, H, args.repeats)
                steps = {"charrnn": charrnn_trainer(L, H, T, B, ids, V)}
                if torch is not None:
                    steps["torch"] = torch_trainer(L, H, T, B, ids, V)
                rates = alternate(steps, T * B, args.repeats, args.seconds, warmup=2)
                ours = statistics.median(rates["charrnn"])
                theirs = statistics.median(rates["torch"]) if "torch" in rates else None
                gflops = ours * flops_per_char(L, H, V) / 1e9
                rows.append({
                    "config": name, "layers": L, "hidden": H, "seq_length": T, "batch_size": B,
                    "threads": threads, "charrnn_chars_per_sec": ours, "torch_chars_per_sec": theirs,
                    "ratio": ours / theirs if theirs else None,
                    "charrnn_gflops": gflops, "peak_1024_gflops": peaks[threads]["1024"],
                    "peak_BH_HH_gflops": small, "fraction_of_peak_1024": gflops / peaks[threads]["1024"],
                    "fraction_of_peak_BH_HH": gflops / small,
                    "spread_charrnn": spread(rates["charrnn"]),
                    "spread_torch": spread(rates["torch"]) if theirs else None,
                    "runs_charrnn": rates["charrnn"], "runs_torch": rates.get("torch"),
                })
    return rows, peaks


def training_cli(rows: list[dict], data: Path, args) -> None:
    """Adds each row's chars/s through the real `charrnn train` path (a subprocess per row)."""
    with tempfile.TemporaryDirectory() as tmp:
        for row in rows:
            log(f"charrnn train ({row['config']}), {row['threads']} thread(s)")
            row["charrnn_cli_chars_per_sec"] = cli_rate(
                row["config"], row["threads"], data, Path(tmp), args.cli_seconds, row["charrnn_chars_per_sec"])


def sampling(threads_list, V: int, args) -> list[dict]:
    """2,000 characters one at a time from a 3 x 512 model: charrnn.sample.sample against a torch loop
    (one-hot step through nn.RNN, nn.Linear, softmax, multinomial). </s> is made unreachable
    (b_y[</s>] = -1e4 in both) so every run makes all 2,000 characters."""
    L, H, n = 3, 512, 2000
    model = StackedRNN(V, H, L)
    model.params["b_y"][EOS] = -1e4
    vocab = Vocab([chr(c) for c in range(32, 32 + V - 2)])
    steps = {"charrnn": lambda k: sample(model, vocab, "", n, 1.0, None, np.random.default_rng(k))}
    if torch is not None:
        rnn, out_layer = torch.nn.RNN(V, H, L, nonlinearity="tanh"), torch.nn.Linear(H, V)
        with torch.no_grad():
            for l in range(1, L + 1):
                getattr(rnn, f"weight_ih_l{l - 1}").copy_(torch.from_numpy(
                    model.params["W_xh"] if l == 1 else model.params[f"W_hhd.{l}"]))
                getattr(rnn, f"weight_hh_l{l - 1}").copy_(torch.from_numpy(model.params[f"W_hht.{l}"]))
                getattr(rnn, f"bias_ih_l{l - 1}").copy_(torch.from_numpy(model.params[f"b_h.{l}"]))
                getattr(rnn, f"bias_hh_l{l - 1}").zero_()
            out_layer.weight.copy_(torch.from_numpy(model.params["W_hy"]))
            out_layer.bias.copy_(torch.from_numpy(model.params["b_y"]))

        def torch_loop(k):
            gen = torch.Generator().manual_seed(k)
            with torch.no_grad():
                h, x, i = torch.zeros(L, 1, H), torch.zeros(1, 1, V), 0
                for _ in range(n):
                    x.zero_()
                    x[0, 0, i] = 1
                    out, h = rnn(x, h)
                    probs = torch.softmax(out_layer(out[0, 0]), dim=-1)
                    i = int(torch.multinomial(probs, 1, generator=gen))

        steps["torch"] = torch_loop
    rows = []
    for threads in threads_list:
        log(f"sampling 3x512, {threads} thread(s)")
        if torch is not None:
            torch.set_num_threads(threads)
        with threadpool_limits(threads, user_api="blas"):
            rates = alternate(steps, n, args.repeats, 0.0, warmup=1)
        ours = statistics.median(rates["charrnn"])
        theirs = statistics.median(rates["torch"]) if "torch" in rates else None
        rows.append({"threads": threads, "charrnn_chars_per_sec": ours, "torch_chars_per_sec": theirs,
                     "ratio": ours / theirs if theirs else None, "spread_charrnn": spread(rates["charrnn"]),
                     "spread_torch": spread(rates["torch"]) if theirs else None})
    return rows


def seq_sweep(ids, V, threads: int, args) -> list[dict]:
    """charrnn chars/s at seq 25, 50, 100, 200 on config (b)'s other shapes: flat means no per-step tax."""
    L, H, _, B = CONFIGS["b"]
    rows = []
    with threadpool_limits(threads, user_api="blas"):
        steps = {T: charrnn_trainer(L, H, T, B, ids, V) for T in (25, 50, 100, 200)}
        log(f"seq_length sweep 2x128 batch 50, {threads} thread(s)")
        # one alternation per T (chars per call differ): interleave by hand
        rates = {T: [] for T in steps}
        at = {T: 2 for T in steps}
        for T, s in steps.items():
            s(0), s(1)
        for _ in range(args.repeats):
            for T, s in steps.items():
                r, at[T] = run_rate(s, T * B, args.seconds, at[T])
                rates[T].append(r)
    for T, r in rates.items():
        rows.append({"seq_length": T, "threads": threads, "charrnn_chars_per_sec": statistics.median(r),
                     "spread": spread(r)})
    return rows


SCALE_CHILD = """
import json, resource, sys, time
from charrnn.config import DataConfig
from charrnn.data import read_text, split_records, encode_records, split_train_val
from charrnn.vocab import Vocab
path = sys.argv[1]
t0 = time.perf_counter(); text = read_text(path)
t1 = time.perf_counter(); records = split_records(text, "file")
vocab = Vocab.from_texts(records)
t2 = time.perf_counter(); ids = encode_records(records, vocab)
t3 = time.perf_counter()
print(json.dumps({"read": t1 - t0, "vocab": t2 - t1, "encode": t3 - t2, "chars": len(ids) - 2,
                  "vocab_size": vocab.size, "id_bytes": ids.itemsize,
                  "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def scale(size_mb: int, threads: int, args) -> dict:
    """Load and train on a synthetic text of `size_mb` MB: Tiny Shakespeare (or random text) repeated."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.txt"
        seed_text = SHAKESPEARE.read_text() if SHAKESPEARE.is_file() else "the quick brown fox\n" * 50_000
        copies = size_mb * 1_000_000 // len(seed_text.encode()) + 1
        with open(path, "w") as f:
            for _ in range(copies):
                f.write(seed_text)
        nbytes = path.stat().st_size
        log(f"scale: loading {nbytes / 1e6:.0f} MB")
        load = json.loads(subprocess.run([sys.executable, "-c", SCALE_CHILD, str(path)], capture_output=True,
                                         text=True, env=thread_env(threads), check=True).stdout)
        seconds = load["read"] + load["vocab"] + load["encode"]
        L, H, T, B = CONFIGS["b"]
        steps = args.scale_steps
        log(f"scale: charrnn train on {nbytes / 1e6:.0f} MB, {steps} steps of 2x128 seq 50 batch 50")
        config = Path(tmp) / "big.yaml"
        config.write_text(f"data:\n  path: {path}\n  val_fraction: 0\n"
                          f"model:\n  hidden_size: {H}\n  num_layers: {L}\n"
                          f"train:\n  seq_length: {T}\n  batch_size: {B}\n  steps: {steps}\n"
                          f"  eval_every: {steps}\n  checkpoint_every: {steps}\n  log_every: {steps}\n"
                          f"  out_dir: {Path(tmp) / 'run'}\n")
        began = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "charrnn", "train", str(config), "--quiet", "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=thread_env(threads))
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS, not the largest child's so far
        wall = time.perf_counter() - began
        out, err = proc.stdout.read(), proc.stderr.read()
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"charrnn train on the big text failed: {err.decode()}")
        summary = json.loads(out)
        child_rss = usage.ru_maxrss * 1024
    return {
        "bytes": nbytes, "vocab_size": load["vocab_size"], "id_bytes_per_char": load["id_bytes"],
        "read_seconds": load["read"], "vocab_seconds": load["vocab"], "encode_seconds": load["encode"],
        "load_mb_per_sec": nbytes / 1e6 / seconds, "load_peak_rss_bytes": load["max_rss_kb"] * 1024,
        "train_peak_rss_bytes": child_rss, "train_peak_rss_over_corpus": child_rss / nbytes,
        "train_steps": steps, "train_wall_seconds": wall, "train_chars_per_sec": summary["chars_per_sec"],
    }


# ---------------------------------------------------------------- report

def environment() -> dict:
    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    blas = [{k: v for k, v in lib.items() if k in ("internal_api", "version", "architecture", "threading_layer",
                                                     "num_threads", "filepath")}
            for lib in threadpool_info()]
    return {
        "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
        "torch": torch.__version__ if torch is not None else None,
        "torch_blas": ("mkl" if torch.backends.mkl.is_available() else "other") if torch is not None else None,
        "thread_pools": blas,
        "openblas_env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS")},
        "load_average_at_start": os.getloadavg(),
    }


def fmt(x, spec=",.0f") -> str:
    return "-" if x is None else format(x, spec)


def table(report: dict) -> str:
    env, lines = report["environment"], []
    numpy_blas = [p for p in env["thread_pools"] if p["internal_api"] in ("openblas", "mkl", "blis")
                  and "numpy" in p["filepath"]]
    blas = ", ".join(f"{p['internal_api']} {p['version']} ({p.get('architecture')} kernels, "
                     f"{p.get('threading_layer')})" for p in numpy_blas) or "unknown BLAS"
    lines.append(f"charrnn speed: {env['cpu']}, {env['cores']} cores; numpy {env['numpy']} with {blas}; "
                 f"torch {env['torch']} ({env['torch_blas']}); load average at start {env['load_average_at_start'][0]:.1f}")
    lines.append(f"OPENBLAS_* environment: {env['openblas_env'] or 'none set'}")
    lines.append("float32 matmul peak (1024^3, best of runs): " + ", ".join(
        f"{t} thread(s) {p['1024']:.0f} GFLOP/s" for t, p in report["peaks"].items()))
    lines.append("")
    lines.append("training, chars/s (median of alternating runs; spread = slowest/fastest run ratio)")
    head = (f"{'cfg':3} {'shape':17} {'thr':>3} {'charrnn':>9} {'train CLI':>9} {'torch':>9} {'ratio':>6} "
            f"{'GFLOP/s':>8} {'%1024':>6} {'%(B,H)(H,H)':>11} {'spread us/torch':>15}")
    lines += [head, "-" * len(head)]
    for r in report["training"]:
        shape = f"{r['layers']}x{r['hidden']} s{r['seq_length']} b{r['batch_size']}"
        lines.append(
            f"{r['config']:3} {shape:17} {r['threads']:>3} {fmt(r['charrnn_chars_per_sec']):>9} "
            f"{fmt(r.get('charrnn_cli_chars_per_sec')):>9} {fmt(r['torch_chars_per_sec']):>9} "
            f"{fmt(r['ratio'], '.2f'):>6} {r['charrnn_gflops']:>8.1f} {100 * r['fraction_of_peak_1024']:>5.0f}% "
            f"{100 * r['fraction_of_peak_BH_HH']:>10.0f}% "
            f"{fmt(r['spread_charrnn'], '.2f'):>7}/{fmt(r['spread_torch'], '.2f'):<7}")
    lines.append("")
    lines.append("sampling 2,000 chars one at a time from 3x512, chars/s")
    for r in report["sampling"]:
        lines.append(f"  {r['threads']} thread(s): charrnn {fmt(r['charrnn_chars_per_sec'])}, torch loop "
                     f"{fmt(r['torch_chars_per_sec'])}, ratio {fmt(r['ratio'], '.2f')} "
                     f"(spread {fmt(r['spread_charrnn'], '.2f')}/{fmt(r['spread_torch'], '.2f')})")
    if report.get("seq_sweep"):
        lines.append("")
        lines.append("seq_length sweep, 2x128 batch 50: " + ", ".join(
            f"seq {r['seq_length']} {fmt(r['charrnn_chars_per_sec'])}" for r in report["seq_sweep"])
            + f" chars/s ({report['seq_sweep'][0]['threads']} thread(s))")
    if report.get("scale"):
        s = report["scale"]
        lines.append("")
        lines.append(
            f"scale, {s['bytes'] / 1e6:.0f} MB synthetic text: load {s['load_mb_per_sec']:.0f} MB/s (read "
            f"{s['read_seconds']:.2f} s, vocabulary {s['vocab_seconds']:.2f} s, encode {s['encode_seconds']:.2f} s; "
            f"{s['id_bytes_per_char']} byte(s) per id); peak RSS loading {s['load_peak_rss_bytes'] / 1e6:.0f} MB, "
            f"training {s['train_peak_rss_bytes'] / 1e6:.0f} MB = {s['train_peak_rss_over_corpus']:.2f} x corpus; "
            f"charrnn train 2x128 s50 b50 on it: {fmt(s['train_chars_per_sec'])} chars/s over {s['train_steps']} "
            f"steps ({s['train_wall_seconds']:.0f} s wall with loading)")
    lines.append("")
    lines.append(f"command: {report['command']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="JSON on stdout, the table on stderr")
    parser.add_argument("--quick", action="store_true", help="3 repeats, shorter runs, 20 MB scale test")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--configs", default="abcd", help="which of a, b, c, d (default abcd)")
    parser.add_argument("--repeats", type=int, default=7, help="alternating runs per contender (default 7)")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one timed run (default 1.0)")
    parser.add_argument("--cli-seconds", type=float, default=6.0, help="length of each charrnn train run")
    parser.add_argument("--scale-mb", type=int, default=200, help="synthetic text size (default 200; 0 skips)")
    parser.add_argument("--scale-steps", type=int, default=100, help="training steps on the big text")
    parser.add_argument("--skip", default="", help="comma-separated sections to skip: cli, sampling, sweep")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.seconds, args.cli_seconds = 3, 0.4, 3.0
        args.scale_mb, args.scale_steps = min(args.scale_mb, 20), 20
    skip = set(filter(None, args.skip.split(",")))
    threads_list = [int(t) for t in args.threads.split(",")]
    ids, vocab = corpus_ids()
    report = {"command": " ".join(["python", "bench/speed.py", *sys.argv[1:]]), "environment": environment(),
              "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    report["training"], report["peaks"] = training(threads_list, list(args.configs), ids, vocab.size, args)
    if "cli" not in skip:
        data = SHAKESPEARE
        if not data.is_file():
            tmp = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False)
            tmp.write(vocab.decode(ids))
            data = Path(tmp.name)
        training_cli(report["training"], data, args)
    report["sampling"] = sampling(threads_list, vocab.size, args) if "sampling" not in skip else []
    report["seq_sweep"] = seq_sweep(ids, vocab.size, max(threads_list), args) if "sweep" not in skip else []
    report["scale"] = scale(args.scale_mb, max(threads_list), args) if args.scale_mb else None
    text = table(report)
    if args.json:
        print(text, file=sys.stderr)
        print(json.dumps(report, indent=1))
    else:
        print(text)


if __name__ == "__main__":
    main()
