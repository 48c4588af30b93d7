"""charrnn beside torch.nn.RNN on this machine: training, sampling and scale, in one table.

    python bench/speed.py              # the table on stdout (about 25 minutes on 2 cores)
    python bench/speed.py --json       # the same numbers as JSON on stdout, the table on stderr
    python bench/speed.py --quick      # fewer and shorter runs, a 20 MB scale test: a smoke run
    python bench/speed.py --cells lstm,gru --configs bc --kernels native,configured --threads 2 \
        --skip cli,parallel,sampling --scale-mb 0   # the gated cells against nn.LSTM / nn.GRU, both kernels

Needs torch (CPU build), and for the MPI row the `mpi` extra (`pip install -e '.[mpi]'`).
Method: every contender runs in its own process (charrnn's never imports torch), with its thread
count set in the environment before numpy or torch loads, so neither library's thread pool spins
against the other's. Their timed runs alternate (charrnn, torch, charrnn, ...) with a short pause
between, so both see the same machine load; each number is the median of its runs, and each ratio
comes from the same invocation. A training run times whole windows (forward, backward, clipping at 5,
Adam) after two warm-up windows, on Tiny Shakespeare's ids (vocabulary 67) when
../shared/data/tinyshakespeare.txt is there, else on random ids.
--cells runs the training rows for each cell: charrnn's StackedRNN(cell=...) against nn.RNN(tanh), nn.LSTM
or nn.GRU, the LSTM's state carried as torch's (h, c).
Model FLOPs per character are 6 x the weights used in products, 6 G (L H^2 + (L-1) H^2) + 6 H V with
G = 1, 4, 3 gate blocks (rnn, lstm, gru): forward, and two gradient products back; layer 1's input is a
row gather and is not counted.
--kernels picks the OpenBLAS kernels of both contenders' processes: `configured` leaves the environment
as it is, `native` removes OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE from the children's environment, so
OpenBLAS picks the CPU's own kernel, as on a user's machine. Each row names the kernel numpy's OpenBLAS
ran in the workers (threadpoolctl's `architecture`); the kernels' runs alternate with each other too.
The data-parallel section runs the real `charrnn train` (its defaults, and train.workers = 1, 2, 3,
and under `mpiexec -n 2`), alternated, and two default runs at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
CONFIGS = {  # name: (layers, hidden, seq_length, batch_size)
    "a": (1, 100, 25, 1),  # min-char-rnn
    "b": (2, 128, 50, 50),  # char-rnn's defaults
    "c": (2, 512, 50, 50),
    "d": (3, 512, 100, 64),
}
LR, CLIP = 2e-3, 5.0
GATES = {"rnn": 1, "lstm": 4, "gru": 3}  # gate blocks of each cell's products
KERNELS = ("native", "configured")
# what `native` removes: the machine's choice of OpenBLAS kernel and its cache size
KERNEL_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
SAMPLE_SHAPE, SAMPLE_CHARS = (3, 512), 2000
# idle time before each timed run: the other process's worker threads stop spinning and sleep
# (OpenBLAS and OpenMP spin a while after each call; two busy pools on two cores slow both)
PAUSE = 0.3


def log(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


def flops_per_char(L: int, H: int, V: int, cell: str = "rnn") -> int:
    return 6 * GATES[cell] * (L * H * H + (L - 1) * H * H) + 6 * H * V


def thread_env(threads: int, kernel: str = "configured") -> dict:
    """The parent's environment with the thread counts set; `native` drops the OpenBLAS kernel choice."""
    env = {k: v for k, v in os.environ.items() if kernel == "configured" or k not in KERNEL_ENV}
    return {
        **env,
        "OPENBLAS_NUM_THREADS": str(threads),
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    }


def numpy_blas() -> list[dict]:
    """numpy's BLAS libraries as threadpoolctl sees them in this process (OpenBLAS names its kernel)."""
    from threadpoolctl import threadpool_info

    return [
        {k: lib.get(k) for k in ("internal_api", "version", "architecture", "threading_layer", "num_threads")}
        for lib in threadpool_info()
        if lib.get("user_api") == "blas"
    ]


# ---------------------------------------------------------------- workers (one process each)


def corpus_ids():
    """Tiny Shakespeare as charrnn encodes it (one record), or random text over 65 characters."""
    import numpy as np

    from charrnn.data import encode_records, read_text, split_records
    from charrnn.vocab import Vocab

    if SHAKESPEARE.is_file():
        records = split_records(read_text(SHAKESPEARE), "file")
    else:
        alphabet = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,;:!?'-\n&$3")
        records = ["".join(np.random.default_rng(0).choice(alphabet, 1_000_000))]
    vocab = Vocab.from_texts(records)
    return encode_records(records, vocab), vocab


def charrnn_train(L, H, T, B, cell="rnn"):
    """One training window as charrnn's loop runs it: window, loss_and_grads, clip, Adam step."""
    from charrnn.data import make_tracks, window
    from charrnn.model import StackedRNN
    from charrnn.optim import Adam, clip_grad_norm

    ids, vocab = corpus_ids()
    tracks = make_tracks(ids, B, T)  # (B, n)
    per_epoch = (tracks.shape[1] - 1) // T
    model = StackedRNN(vocab.size, H, L, cell=cell)
    opt = Adam(model.params)
    state = {"h": model.zero_state(B)}

    def call(k):
        inputs, targets = window(tracks, k % per_epoch, T)
        loss, grads, state["h"] = model.loss_and_grads(inputs, targets, state["h"])
        clip_grad_norm(grads, CLIP)
        opt.step(model.params, grads, LR)

    return call, T * B


def torch_train(L, H, T, B, cell="rnn"):
    """The same window in torch: nn.RNN(tanh), nn.LSTM or nn.GRU on one-hot input, nn.Linear, cross-entropy,
    clipping, Adam with fused=True (its fastest CPU variant here), the state carried between windows."""
    import numpy as np
    import torch

    from charrnn.data import make_tracks

    ids, vocab = corpus_ids()
    V = vocab.size
    tracks = torch.from_numpy(make_tracks(ids, B, T).astype(np.int64))  # (B, n)
    per_epoch = (tracks.shape[1] - 1) // T
    torch.manual_seed(0)
    rnn = {
        "rnn": lambda: torch.nn.RNN(V, H, L, nonlinearity="tanh"),
        "lstm": lambda: torch.nn.LSTM(V, H, L),
        "gru": lambda: torch.nn.GRU(V, H, L),
    }[cell]()
    out_layer = torch.nn.Linear(H, V)
    params = list(rnn.parameters()) + list(out_layer.parameters())
    opt = torch.optim.Adam(params, lr=LR, fused=True)
    h0 = torch.zeros(L, B, H)  # (L, B, H)
    state = {"h": (h0, h0.clone()) if cell == "lstm" else h0}  # the LSTM carries (h, c)

    def call(k):
        start = (k % per_epoch) * T
        x, y = tracks[:, start : start + T].T, tracks[:, start + 1 : start + T + 1].T
        opt.zero_grad(set_to_none=True)
        out, h = rnn(torch.nn.functional.one_hot(x, V).float(), state["h"])
        loss = torch.nn.functional.cross_entropy(out_layer(out).reshape(-1, V), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()
        state["h"] = tuple(s.detach() for s in h) if cell == "lstm" else h.detach()

    return call, T * B


def sample_model():
    """A 3 x 512 model on Tiny Shakespeare's vocabulary with </s> made unreachable (b_y[</s>] = -1e4),
    so every sample runs the full 2,000 characters."""
    from charrnn.model import StackedRNN
    from charrnn.vocab import EOS

    _, vocab = corpus_ids()
    L, H = SAMPLE_SHAPE
    model = StackedRNN(vocab.size, H, L)
    model.params["b_y"][EOS] = -1e4
    return model, vocab


def charrnn_sample():
    import numpy as np

    from charrnn.sampling import sample

    model, vocab = sample_model()

    def call(k):
        assert len(sample(model, vocab, "", SAMPLE_CHARS, 1.0, None, np.random.default_rng(k))) == SAMPLE_CHARS

    return call, SAMPLE_CHARS


def torch_sample():
    """The same weights in nn.RNN + nn.Linear; per character: one-hot step, softmax, multinomial."""
    import torch

    model, vocab = sample_model()
    p, (L, H), V = model.params, SAMPLE_SHAPE, vocab.size
    rnn, out_layer = torch.nn.RNN(V, H, L, nonlinearity="tanh"), torch.nn.Linear(H, V)
    with torch.no_grad():
        for l in range(1, L + 1):
            getattr(rnn, f"weight_ih_l{l - 1}").copy_(torch.from_numpy(p["W_xh"] if l == 1 else p[f"W_hhd.{l}"]))
            getattr(rnn, f"weight_hh_l{l - 1}").copy_(torch.from_numpy(p[f"W_hht.{l}"]))
            getattr(rnn, f"bias_ih_l{l - 1}").copy_(torch.from_numpy(p[f"b_h.{l}"]))
            getattr(rnn, f"bias_hh_l{l - 1}").zero_()
        out_layer.weight.copy_(torch.from_numpy(p["W_hy"]))
        out_layer.bias.copy_(torch.from_numpy(p["b_y"]))

    def call(k):
        gen = torch.Generator().manual_seed(k)
        with torch.no_grad():
            h, x, i = torch.zeros(L, 1, H), torch.zeros(1, 1, V), 0
            for _ in range(SAMPLE_CHARS):
                x.zero_()
                x[0, 0, i] = 1
                out, h = rnn(x, h)
                probs = torch.softmax(out_layer(out[0, 0]), dim=-1)
                i = int(torch.multinomial(probs, 1, generator=gen))

    return call, SAMPLE_CHARS


def gemm(M, K, N):
    """(M, K) x (K, N) float32 products through numpy, batched to about 20 ms a call; the unit is FLOPs."""
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = rng.random((M, K), dtype=np.float32), rng.random((N, K), dtype=np.float32).T
    out = np.empty((M, N), np.float32)
    flops = 2 * M * K * N
    batch = max(3, int(2e9 / flops))

    def call(k):
        for _ in range(batch):
            np.matmul(a, b, out=out)

    return call, batch * flops


WORKERS = {
    "charrnn_train": charrnn_train,
    "torch_train": torch_train,
    "charrnn_sample": charrnn_sample,
    "torch_sample": torch_sample,
    "gemm": gemm,
}


def worker(spec: str) -> None:
    """Serve timed runs on stdin/stdout: each line `seconds calls` runs whole calls for at least that
    long and that many times, and answers units per second; `warm N` runs N untimed calls; `blas`
    answers numpy's BLAS in this process (JSON), so the parent knows which kernel ran."""
    kind, args = json.loads(spec)
    if kind.startswith("torch"):
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    call, units = WORKERS[kind](*args)
    k = 0
    for line in sys.stdin:
        if line.startswith("blas"):
            print(json.dumps(numpy_blas()), flush=True)
            continue
        if line.startswith("warm"):
            for _ in range(int(line.split()[1])):
                call(k)
                k += 1
            print("ok", flush=True)
            continue
        seconds, calls = line.split()
        n, began = 0, time.perf_counter()
        while True:
            call(k)
            k, n = k + 1, n + 1
            elapsed = time.perf_counter() - began
            if elapsed >= float(seconds) and n >= int(calls):
                break
        print(n * units / elapsed, flush=True)


class Contender:
    def __init__(self, threads: int, kind: str, args: tuple, kernel: str = "configured"):
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", json.dumps([kind, args])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=thread_env(threads, kernel),
        )

    def ask(self, line: str) -> str:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError(f"worker {self.proc.args[-1]} died (exit {self.proc.wait()})")
        return answer

    def blas_kernel(self) -> str | None:
        """The kernel numpy's OpenBLAS picked in this worker (None without OpenBLAS)."""
        pools = json.loads(self.ask("blas"))
        return next((p["architecture"] for p in pools if p["internal_api"] == "openblas"), None)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def alternate(
    contenders: dict,
    threads: int,
    repeats: int,
    seconds: float,
    warmup: int = 2,
    calls: int = 2,
    kernels: dict | None = None,
) -> dict:
    """Rates of each contender (name: (kind, args) or (kind, args, kernel)), each in its own process, runs
    interleaved. Fills `kernels`, when given, with each contender's OpenBLAS kernel."""
    procs = {name: Contender(threads, *spec) for name, spec in contenders.items()}
    try:
        for name, p in procs.items():
            if kernels is not None:
                kernels[name] = p.blas_kernel()
            p.ask(f"warm {warmup}")
        rates: dict = {name: [] for name in procs}
        for _ in range(repeats):
            for name, p in procs.items():
                time.sleep(PAUSE)
                rates[name].append(float(p.ask(f"{seconds} {calls}")))
        return rates
    finally:
        for p in procs.values():
            p.close()


def median(values):
    return statistics.median(values) if values else None


def spread(values: list[float]) -> float | None:
    """fastest / slowest run: how noisy the machine was."""
    return max(values) / min(values) if values and min(values) > 0 else None


def gemm_peak(shape: tuple, threads: int, repeats: int, kernel: str = "configured") -> float:
    """Best float32 matmul GFLOP/s at this shape over the runs."""
    return max(alternate({"gemm": ("gemm", shape, kernel)}, threads, repeats, 0.05, warmup=1)["gemm"]) / 1e9


# ---------------------------------------------------------------- sections


def training(threads_list, names, cells, kernels, V, torch_ok, args) -> tuple[list[dict], dict]:
    """A row per thread count, config, cell and kernel; the kernels' contenders alternate in one race."""
    rows: list[dict] = []
    peaks: dict = {kernel: {} for kernel in kernels}  # kernel: {threads: GFLOP/s}
    for threads in threads_list:
        for kernel in kernels:
            peaks[kernel][threads] = gemm_peak((1024, 1024, 1024), threads, args.repeats, kernel)
        for name, cell in ((name, cell) for name in names for cell in cells):
            L, H, T, B = CONFIGS[name]
            log(f"training ({name}) {cell} {L}x{H} seq {T} batch {B}, {threads} thread(s), {'/'.join(kernels)}")
            small = {k: gemm_peak((B, H, GATES[cell] * H), threads, args.repeats, k) for k in kernels}
            contenders = {}
            for kernel in kernels:
                contenders[f"charrnn {kernel}"] = ("charrnn_train", (L, H, T, B, cell), kernel)
                if torch_ok:
                    contenders[f"torch {kernel}"] = ("torch_train", (L, H, T, B, cell), kernel)
            blas: dict = {}
            rates = alternate(contenders, threads, args.repeats, args.seconds, kernels=blas)
            for kernel in kernels:
                mine, theirs_runs = rates[f"charrnn {kernel}"], rates.get(f"torch {kernel}")
                ours, theirs = median(mine), median(theirs_runs)
                gflops = ours * flops_per_char(L, H, V, cell) / 1e9
                rows.append(
                    {
                        "config": name,
                        "cell": cell,
                        "layers": L,
                        "hidden": H,
                        "seq_length": T,
                        "batch_size": B,
                        "threads": threads,
                        "kernel": kernel,
                        "blas_kernel": blas[f"charrnn {kernel}"],
                        "charrnn_chars_per_sec": ours,
                        "torch_chars_per_sec": theirs,
                        "ratio": ours / theirs if theirs else None,
                        "charrnn_gflops": gflops,
                        "peak_1024_gflops": peaks[kernel][threads],
                        "peak_BH_HH_gflops": small[kernel],
                        "fraction_of_peak_1024": gflops / peaks[kernel][threads],
                        "fraction_of_peak_BH_HH": gflops / small[kernel],
                        "spread_charrnn": spread(mine),
                        "spread_torch": spread(theirs_runs),
                        "runs_charrnn": mine,
                        "runs_torch": theirs_runs,
                    }
                )
    return rows, peaks


def cli_command(name: str, data: Path, work: Path, steps: int, out: str, extra: tuple = (), prefix: tuple = ()):
    """`charrnn train --json` on config `name`, without validation, for `steps` steps into work/out."""
    L, H, T, B = CONFIGS[name]
    overrides = {
        "data.path": data,
        "data.val_fraction": 0,
        "model.num_layers": L,
        "model.hidden_size": H,
        "train.seq_length": T,
        "train.batch_size": B,
        "train.steps": steps,
        "train.eval_every": steps,
        "train.checkpoint_every": steps,
        "train.log_every": steps,
        "train.out_dir": work / out,
    }
    config = work / "bench.yaml"
    config.write_text("data:\n  records: file\n")
    cmd = [*prefix, sys.executable, "-m", "charrnn", "train", str(config), "--force", "--quiet", "--json"]
    for k, v in overrides.items():
        cmd += ["--set", f"{k}={v}"]
    return cmd + [a for setting in extra for a in ("--set", setting)]


def cli_rate(row: dict, data: Path, work: Path, seconds: float) -> float:
    """chars/s that `charrnn train --json` reports for the row's config, cell, threads and kernel, for a run
    of about `seconds` (sized from the row's timed loop)."""
    name, threads = row["config"], row["threads"]
    _, _, T, B = CONFIGS[name]
    steps = max(5, int(seconds * row["charrnn_chars_per_sec"] / (T * B)))
    # one process, as the timed loops above
    extra = (f"model.cell={row['cell']}", "train.workers=1", f"train.threads={threads}")
    cmd = cli_command(name, data, work, steps, f"run-{name}", extra)
    out = subprocess.run(cmd, capture_output=True, text=True, env=thread_env(threads, row["kernel"]), check=True)
    return json.loads(out.stdout)["chars_per_sec"]


def training_cli(rows: list[dict], data: Path, args) -> None:
    """Adds each row's chars/s through the real `charrnn train` path: one run per row, after a pause."""
    with tempfile.TemporaryDirectory() as tmp:
        for row in rows:
            log(f"charrnn train ({row['config']}) {row['cell']}, {row['threads']} thread(s), {row['kernel']}")
            time.sleep(PAUSE)
            row["charrnn_cli_chars_per_sec"] = cli_rate(row, data, Path(tmp), args.cli_seconds)


def run_cli(cmd: list[str]) -> dict:
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr}")
    return json.loads(done.stdout)


def data_parallel(rows: list[dict], data: Path, args) -> dict:
    """`charrnn train` with its defaults against `--set train.workers=1` and torch's loop; chars/s against
    the worker count; `mpiexec -n 2` against two local workers; two default runs side by side.

    Every run is the real command, without validation, with the thread environment left alone (auto decides),
    sized to about --cli-seconds from the one-process rate measured above; its figure is what `--json` reports.
    Only the rnn rows in the configured kernel have a data-parallel race: it measures the default command.
    """
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    out: dict = {"configs": [], "side_by_side": []}
    top = max(r["threads"] for r in rows)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        default_rows = (r for r in rows if r["cell"] == "rnn" and r["kernel"] == "configured")
        for row in (r for r in default_rows if r["threads"] == top and r["batch_size"] > 1):
            name = row["config"]
            _, _, T, B = CONFIGS[name]
            steps = max(10, int(args.cli_seconds * 1.6 * row["charrnn_chars_per_sec"] / (T * B)))
            variants = {"defaults": (), "workers=1": ("train.workers=1",)}
            variants.update({f"workers={w}": (f"train.workers={w}",) for w in range(2, args.max_workers + 1)})
            prefixes = dict.fromkeys(variants, ())
            if mpiexec:
                variants["mpiexec -n 2"], prefixes["mpiexec -n 2"] = (), (mpiexec, "-n", "2")
            rounds = max(1, args.repeats // 2)  # each run is several seconds of the real command: fewer rounds
            log(f"data-parallel ({name}): {', '.join(variants)}; {steps} steps each, {rounds} rounds")
            runs: dict[str, list[dict]] = {v: [] for v in variants}
            for _ in range(rounds):
                for variant, extra in variants.items():
                    time.sleep(PAUSE)
                    cmd = cli_command(name, data, work, steps, "run", extra, prefixes[variant])
                    runs[variant].append(run_cli(cmd))
            medians = {v: median([s["chars_per_sec"] for s in r]) for v, r in runs.items()}
            summary = runs["defaults"][0]
            out["configs"].append(
                {
                    "config": name,
                    "chars_per_sec": medians,
                    "defaults_plan": f"{summary['workers']} x {summary['threads']}",
                    "sum_ms_per_step": {
                        v: median([s["sum_ms_per_step"] for s in r if s["sum_ms_per_step"] is not None])
                        for v, r in runs.items()
                    },
                    "torch_chars_per_sec": row["torch_chars_per_sec"],
                    "torch_threads": top,
                    "spread_defaults": spread([s["chars_per_sec"] for s in runs["defaults"]]),
                }
            )
            if name == "b" and args.break_even:
                out["break_even"] = break_even(name, data, work, row["charrnn_chars_per_sec"], args)
            if name in args.side_by_side:
                log(f"data-parallel ({name}): two default runs side by side")
                time.sleep(PAUSE)
                both = [
                    subprocess.Popen(
                        cli_command(name, data, work, steps, f"side-{i}"), stdout=subprocess.PIPE, text=True
                    )
                    for i in range(2)
                ]
                rates = [json.loads(p.communicate()[0])["chars_per_sec"] for p in both]
                out["side_by_side"].append({"config": name, "alone": medians["defaults"], "together": rates})
    return out


def break_even(name: str, data: Path, work: Path, rate: float, args) -> list[dict]:
    """Where a second worker starts to pay: config `name` at smaller hidden sizes, 1 worker against 2.

    Where 2 overtake 1, a worker's (B/2, H)·(H, H) product is auto's MIN_PRODUCT (charrnn/parallel.py).
    """
    L, H0, T, B = CONFIGS[name]
    rows = []
    for H in args.break_even:
        scale = min(8.0, (3 * L * H0 * H0 + H0 * 67) / (3 * L * H * H + H * 67))  # small models are call-bound
        steps = max(10, int(args.cli_seconds * rate * scale / (T * B)))
        log(f"break-even: {L}x{H} seq {T} batch {B}, 1 and 2 workers, {steps} steps")
        rates: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(max(1, args.repeats // 2)):
            for w in rates:
                time.sleep(PAUSE)
                extra = (f"model.hidden_size={H}", f"train.workers={w}")
                rates[w].append(run_cli(cli_command(name, data, work, steps, "run", extra))["chars_per_sec"])
        rows.append({"hidden": H, "product": B / 2 * H * H, **{f"workers={w}": median(r) for w, r in rates.items()}})
    return rows


def sampling(threads_list, torch_ok, args) -> list[dict]:
    rows = []
    for threads in threads_list:
        log(f"sampling {SAMPLE_SHAPE[0]}x{SAMPLE_SHAPE[1]}, {threads} thread(s)")
        contenders = {"charrnn": ("charrnn_sample", ())}
        if torch_ok:
            contenders["torch"] = ("torch_sample", ())
        rates = alternate(contenders, threads, args.repeats, 0.0, warmup=1, calls=1)  # a call: 2,000 chars
        ours, theirs = median(rates["charrnn"]), median(rates.get("torch"))
        rows.append(
            {
                "threads": threads,
                "charrnn_chars_per_sec": ours,
                "torch_chars_per_sec": theirs,
                "ratio": ours / theirs if theirs else None,
                "spread_charrnn": spread(rates["charrnn"]),
                "spread_torch": spread(rates.get("torch")),
            }
        )
    return rows


def seq_sweep(threads: int, args) -> list[dict]:
    """charrnn chars/s at seq 25, 50, 100, 200 with config (b)'s other shapes: flat = no per-step tax."""
    L, H, _, B = CONFIGS["b"]
    log(f"seq_length sweep 2x128 batch 50, {threads} thread(s)")
    rates = alternate(
        {T: ("charrnn_train", (L, H, T, B)) for T in (25, 50, 100, 200)}, threads, args.repeats, args.seconds
    )
    return [
        {"seq_length": T, "threads": threads, "charrnn_chars_per_sec": median(r), "spread": spread(r)}
        for T, r in rates.items()
    ]


SCALE_CHILD = """
import json, resource, sys, time
from charrnn.data import read_text, split_records, encode_records
from charrnn.vocab import Vocab
t0 = time.perf_counter(); text = read_text(sys.argv[1])
t1 = time.perf_counter(); records = split_records(text, "file"); vocab = Vocab.from_texts(records)
t2 = time.perf_counter(); ids = encode_records(records, vocab)
t3 = time.perf_counter()
print(json.dumps({"read": t1 - t0, "vocab": t2 - t1, "encode": t3 - t2, "vocab_size": vocab.size,
                  "id_bytes": ids.itemsize, "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def scale(size_mb: int, threads: int, args) -> dict:
    """Load, then train with `charrnn train`, on Tiny Shakespeare (or random text) repeated to size_mb MB."""
    L, H, T, B = CONFIGS["b"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.txt"
        seed_text = SHAKESPEARE.read_text() if SHAKESPEARE.is_file() else "the quick brown fox\n" * 50_000
        with open(path, "w") as f:
            for _ in range(size_mb * 1_000_000 // len(seed_text.encode()) + 1):
                f.write(seed_text)
        nbytes = path.stat().st_size
        log(f"scale: loading {nbytes / 1e6:.0f} MB")
        load = json.loads(
            subprocess.run(
                [sys.executable, "-c", SCALE_CHILD, str(path)],
                capture_output=True,
                text=True,
                env=thread_env(threads),
                check=True,
            ).stdout
        )
        seconds = load["read"] + load["vocab"] + load["encode"]
        log(f"scale: charrnn train on {nbytes / 1e6:.0f} MB, {args.scale_steps} steps of 2x128 seq 50 batch 50")
        steps = args.scale_steps
        config = Path(tmp) / "big.yaml"
        config.write_text(
            f"data:\n  path: {path}\n  val_fraction: 0\n"
            f"model:\n  hidden_size: {H}\n  num_layers: {L}\n"
            f"train:\n  seq_length: {T}\n  batch_size: {B}\n  steps: {steps}\n"
            f"  eval_every: {steps}\n  checkpoint_every: {steps}\n  log_every: {steps}\n"
            f"  out_dir: {Path(tmp) / 'run'}\n"
        )
        began = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "charrnn", "train", str(config), "--quiet", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=thread_env(threads),
        )
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS, not the largest child's so far
        wall = time.perf_counter() - began
        out, err = proc.stdout.read(), proc.stderr.read()
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"charrnn train on the big text failed: {err.decode()}")
        summary = json.loads(out)
    return {
        "bytes": nbytes,
        "vocab_size": load["vocab_size"],
        "id_bytes_per_char": load["id_bytes"],
        "read_seconds": load["read"],
        "vocab_seconds": load["vocab"],
        "encode_seconds": load["encode"],
        "load_mb_per_sec": nbytes / 1e6 / seconds,
        "load_peak_rss_bytes": load["max_rss_kb"] * 1024,
        "train_peak_rss_bytes": usage.ru_maxrss * 1024,
        "train_peak_rss_over_corpus": usage.ru_maxrss * 1024 / nbytes,
        "train_steps": steps,
        "train_wall_seconds": wall,
        "train_chars_per_sec": summary["chars_per_sec"],
    }


# ---------------------------------------------------------------- report


def kernel_setting(kernel: str) -> dict:
    """What a kernel setting leaves of OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, and the kernel numpy's OpenBLAS
    then picks, asked of a worker started with that environment."""
    probe = Contender(1, "gemm", (1, 1, 1), kernel)
    try:
        architecture = probe.blas_kernel()
    finally:
        probe.close()
    env = thread_env(1, kernel)
    return {"env": {k: env[k] for k in KERNEL_ENV if k in env}, "architecture": architecture}


def environment(threads_list, kernels) -> dict:
    cpu = platform.processor()
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as f:
        cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    import numpy as np  # the parent loads numpy only to name its BLAS; the timing happens in workers

    pools = numpy_blas()
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": pools,
        "torch": torch_version,
        "threads": threads_list,
        "openblas_env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS")},
        "kernels": {kernel: kernel_setting(kernel) for kernel in kernels},
        "load_average_at_start": os.getloadavg(),
    }


def fmt(x, spec=",.0f") -> str:
    return "-" if x is None else format(x, spec)


def table(report: dict) -> str:
    env, lines = report["environment"], []
    blas = (
        ", ".join(
            f"{p['internal_api']} {p['version']} ({p['architecture']} kernels, {p['threading_layer']})"
            for p in env["numpy_blas"]
        )
        or "no BLAS found"
    )
    lines.append(
        f"charrnn speed: {env['cpu']}, {env['cores']} cores; numpy {env['numpy']} with {blas}; torch {env['torch']}"
    )
    lines.append(
        f"threads: OPENBLAS_NUM_THREADS = OMP_NUM_THREADS = MKL_NUM_THREADS = torch.set_num_threads "
        f"per row; OPENBLAS_* otherwise: {env['openblas_env'] or 'none set'}; load average at start "
        f"{env['load_average_at_start'][0]:.1f}, at end {report['load_average_at_end'][0]:.1f}"
    )
    lines.append(
        "OpenBLAS kernels: "
        + "; ".join(
            f"{kernel} = {k['architecture']} ({', '.join(f'{n}={v}' for n, v in k['env'].items()) or 'none set'})"
            for kernel, k in env["kernels"].items()
        )
    )
    for kernel, peaks in report["peaks"].items():
        lines.append(
            f"float32 matmul peak, 1024^3 (best run), {kernel} kernel: "
            + ", ".join(f"{t} thread(s) {p:.0f} GFLOP/s" for t, p in peaks.items())
        )
    lines.append("")
    lines.append(
        "training, chars/s: median of alternating runs; spread = fastest/slowest run (charrnn/torch); "
        "G = the cell's gate blocks (1, 4, 3)"
    )
    head = (
        f"{'cfg':3} {'cell':4} {'shape':17} {'thr':>3} {'kernel':<22} {'charrnn':>9} {'train CLI':>9} "
        f"{'torch':>9} {'ratio':>6} {'GFLOP/s':>8} {'%1024':>6} {'%(B,H)(H,GH)':>12}  {'spread':<11}"
    )
    lines += [head, "-" * len(head)]
    for r in report["training"]:
        shape = f"{r['layers']}x{r['hidden']} s{r['seq_length']} b{r['batch_size']}"
        kernel = f"{r['kernel']} ({r['blas_kernel']})"
        lines.append(
            f"{r['config']:3} {r['cell']:4} {shape:17} {r['threads']:>3} {kernel:<22} "
            f"{fmt(r['charrnn_chars_per_sec']):>9} "
            f"{fmt(r.get('charrnn_cli_chars_per_sec')):>9} {fmt(r['torch_chars_per_sec']):>9} "
            f"{fmt(r['ratio'], '.2f'):>6} {r['charrnn_gflops']:>8.1f} {100 * r['fraction_of_peak_1024']:>5.0f}% "
            f"{100 * r['fraction_of_peak_BH_HH']:>11.0f}%  "
            f"{fmt(r['spread_charrnn'], '.2f')}/{fmt(r['spread_torch'], '.2f')}"
        )
    if report.get("data_parallel"):
        lines += ["", *data_parallel_table(report["data_parallel"])]
    if report["sampling"]:
        lines.append("")
        lines.append(f"sampling {SAMPLE_CHARS:,} chars one at a time from {SAMPLE_SHAPE[0]}x{SAMPLE_SHAPE[1]}, chars/s")
        for r in report["sampling"]:
            lines.append(
                f"  {r['threads']} thread(s): charrnn {fmt(r['charrnn_chars_per_sec'])}, torch loop "
                f"{fmt(r['torch_chars_per_sec'])}, ratio {fmt(r['ratio'], '.2f')} "
                f"(spread {fmt(r['spread_charrnn'], '.2f')}/{fmt(r['spread_torch'], '.2f')})"
            )
    if report["seq_sweep"]:
        lines.append("")
        lines.append(
            f"seq_length sweep, 2x128 batch 50, {report['seq_sweep'][0]['threads']} thread(s): "
            + ", ".join(f"seq {r['seq_length']} {fmt(r['charrnn_chars_per_sec'])}" for r in report["seq_sweep"])
            + " chars/s"
        )
    if report["scale"]:
        s = report["scale"]
        lines.append("")
        lines.append(
            f"scale, {s['bytes'] / 1e6:.0f} MB synthetic text: load {s['load_mb_per_sec']:.0f} MB/s (read "
            f"{s['read_seconds']:.2f} s, vocabulary {s['vocab_seconds']:.2f} s, encode {s['encode_seconds']:.2f} s; "
            f"{s['id_bytes_per_char']} byte per id)"
        )
        lines.append(
            f"  peak RSS loading {s['load_peak_rss_bytes'] / 1e6:.0f} MB; charrnn train (2x128 s50 b50, "
            f"{s['train_steps']} steps) peak RSS {s['train_peak_rss_bytes'] / 1e6:.0f} MB = "
            f"{s['train_peak_rss_over_corpus']:.2f} x corpus, {fmt(s['train_chars_per_sec'])} chars/s"
        )
    lines.append("")
    lines.append(f"command: {report['command']}")
    return "\n".join(lines)


def data_parallel_table(dp: dict) -> list[str]:
    lines = [
        "data-parallel charrnn train, chars/s (median of alternated runs, the real command, no validation); "
        "sum = ms per step summing the workers' gradients"
    ]
    for c in dp["configs"]:
        r, shape = c["chars_per_sec"], "{}x{} s{} b{}".format(*CONFIGS[c["config"]])
        one, torch = r["workers=1"], c["torch_chars_per_sec"]
        lines.append(
            f"{c['config']} {shape}: defaults ({c['defaults_plan']} threads) {fmt(r['defaults'])} = "
            f"{r['defaults'] / one:.2f} x workers=1 ({fmt(one)})"
            + (f", {r['defaults'] / torch:.2f} x torch ({fmt(torch)}, {c['torch_threads']} threads)" if torch else "")
            + f"; spread {fmt(c['spread_defaults'], '.2f')}"
        )
        counts = [v for v in r if v.startswith("workers=")]
        lines.append("    by workers: " + ", ".join(f"{v.split('=')[1]}: {fmt(r[v])}" for v in counts))
        if "mpiexec -n 2" in r:
            mpi, local = r["mpiexec -n 2"], r["workers=2"]
            sums = c["sum_ms_per_step"]
            lines.append(
                f"    mpiexec -n 2 {fmt(mpi)} vs 2 local workers {fmt(local)}: {mpi / local:.2f}; sum "
                f"{fmt(sums['mpiexec -n 2'], '.2f')} ms vs {fmt(sums['workers=2'], '.2f')} ms"
            )
    if dp.get("break_even"):
        lines.append(
            "    break-even, 2xH s50 b50, 1 -> 2 workers: "
            + ", ".join(
                f"H {r['hidden']} ({r['product'] / 1e3:.0f}k multiply-adds in a worker's product) "
                f"{fmt(r['workers=1'])} -> {fmt(r['workers=2'])}"
                for r in dp["break_even"]
            )
        )
    for s in dp["side_by_side"]:
        shares = [rate / s["alone"] for rate in s["together"]]
        lines.append(
            f"side by side ({s['config']}): two default runs at once, {fmt(s['together'][0])} and "
            f"{fmt(s['together'][1])} chars/s = {100 * shares[0]:.0f}% and {100 * shares[1]:.0f}% of one alone "
            f"({fmt(s['alone'])})"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="JSON on stdout, the table on stderr")
    parser.add_argument("--quick", action="store_true", help="3 repeats, shorter runs, 20 MB scale test")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--configs", default="abcd", help="which of a, b, c, d (default abcd)")
    parser.add_argument("--cells", default="rnn", help="comma-separated of rnn, lstm, gru (default rnn)")
    parser.add_argument(
        "--kernels",
        default="configured",
        help="comma-separated of native (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed in the contenders), "
        "configured (the environment as it is; default)",
    )
    parser.add_argument("--repeats", type=int, default=7, help="alternating runs per contender (default 7)")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one timed run (default 1.0)")
    parser.add_argument("--cli-seconds", type=float, default=6.0, help="length of each charrnn train run")
    parser.add_argument("--scale-mb", type=int, default=200, help="synthetic text size (default 200; 0 skips)")
    parser.add_argument("--scale-steps", type=int, default=100, help="training steps on the big text")
    parser.add_argument("--skip", default="", help="comma-separated sections to skip: cli, parallel, sampling, sweep")
    parser.add_argument("--max-workers", type=int, default=3, help="data-parallel: workers up to this many")
    parser.add_argument("--side-by-side", default="bc", help="data-parallel: configs to run two at once")
    parser.add_argument(
        "--break-even",
        default="16,32,64",
        type=lambda text: [int(h) for h in text.split(",") if h],
        help="data-parallel: hidden sizes of config b to race 1 against 2 workers at ('' skips)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker)
    if args.quick:
        args.repeats, args.seconds, args.cli_seconds = 3, 0.4, 3.0
        args.scale_mb, args.scale_steps = min(args.scale_mb, 20), 20
    skip = set(filter(None, args.skip.split(",")))
    threads_list = [int(t) for t in args.threads.split(",")]
    cells, kernels = args.cells.split(","), args.kernels.split(",")
    for option, values, known in (("--cells", cells, GATES), ("--kernels", kernels, KERNELS)):
        if unknown := [v for v in values if v not in known]:
            parser.error(f"{option}: unknown {', '.join(unknown)}; expected some of {', '.join(known)}")
    report = {
        "command": " ".join(["python", "bench/speed.py", *sys.argv[1:]]),
        "environment": environment(threads_list, kernels),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    torch_ok = report["environment"]["torch"] is not None
    V = corpus_ids()[1].size  # 67: Tiny Shakespeare's 65 characters (or the fallback's) + <s>, </s>
    report["training"], report["peaks"] = training(threads_list, list(args.configs), cells, kernels, V, torch_ok, args)
    if "cli" not in skip and SHAKESPEARE.is_file():
        training_cli(report["training"], SHAKESPEARE, args)
    if "parallel" not in skip and SHAKESPEARE.is_file():
        report["data_parallel"] = data_parallel(report["training"], SHAKESPEARE, args)
    report["sampling"] = sampling(threads_list, torch_ok, args) if "sampling" not in skip else []
    report["seq_sweep"] = seq_sweep(max(threads_list), args) if "sweep" not in skip else []
    report["scale"] = scale(args.scale_mb, max(threads_list), args) if args.scale_mb else None
    report["load_average_at_end"] = os.getloadavg()
    text = table(report)
    if args.json:
        print(text, file=sys.stderr)
        print(json.dumps(report, indent=1))
    else:
        print(text)


if __name__ == "__main__":
    main()
