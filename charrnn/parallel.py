"""Data-parallel training: the batch's tracks split over workers, their gradients summed, one step everywhere.

Every worker holds the same weights and optimizer state. At each step every worker computes the loss and
gradients of its own tracks as its part of the mean over all T·B positions; the parts are summed, and every
worker clips and steps with the same sum, so the weights stay the same everywhere: the single-process math,
with only the order of the sums changed. Worker 0 (the process the user started, or MPI rank 0) alone
decides whether there is a next step and at which learning rate, validates, saves and reports; the others
follow its lead (`training.follow`).

On one machine the other workers are processes started here, which sum through shared memory and wait on
pipes (a pipe closes when its process dies, so no worker outlives the run); under `mpiexec` each rank is one
worker, and they sum with MPI Allreduce (`charrnn.mpi`, imported only there).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory

import numpy as np

from .config import Config
from .errors import CharrnnError, ConfigError
from .model import StackedRNN

# auto starts more workers only when each step is worth it: below this many multiply-adds per worker and
# step, passing messages costs more than the second core gains (measured in bench/speed.py, docs/parallel.md)
MIN_STEP_WORK = 5e6
# ... and when the whole run is long enough to pay for starting them (about half a second each)
MIN_RUN_WORK = 2e10
# environment variables that mpiexec sets: MPICH/Hydra (and Intel MPI), Open MPI
MPI_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")
MPI_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK")
MPI_LOCAL_SIZE_VARS = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE")
ADD_SLOTS = 4  # float64 values Workers.add sums at once: a validation's loss, a step's loss


@dataclass(frozen=True)
class Plan:
    """How a run trains: `workers` processes of `threads` BLAS threads each, and why."""

    workers: int
    threads: int
    reason: str

    def describe(self) -> str:
        """As the progress header shows it: `2 workers x 1 thread (auto: one per core)`."""
        w, t = self.workers, self.threads
        return f"{w} worker{'s' * (w > 1)} x {t} thread{'s' * (t > 1)} ({self.reason})"


def cores() -> int:
    """The CPUs this process may run on (taskset and cgroup cpusets included)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _env_int(names: tuple[str, ...]) -> int | None:
    for name in names:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return None


def mpi_size() -> int:
    """How many ranks mpiexec started this process among; 1 outside mpiexec. Read from the environment,
    so that nothing imports MPI unless it runs under mpiexec."""
    return _env_int(MPI_SIZE_VARS) or 1


def mpi_rank() -> int:
    """This process's rank under mpiexec; 0 outside it."""
    return (_env_int(MPI_RANK_VARS) or 0) if mpi_size() > 1 else 0


def step_work(cfg: Config, vocab_size: int) -> float:
    """Multiply-adds of one training step, forward and backward: about three per weight used per character."""
    H, L, V = cfg.model.hidden_size, cfg.model.num_layers, vocab_size
    per_char = 3 * ((2 * L - 1) * H * H + H * V)
    return float(cfg.train.seq_length * cfg.train.batch_size * per_char)


def plan(cfg: Config, vocab_size: int, ranks: int = 1, available: int | None = None) -> Plan:
    """Workers and threads for this run: train.workers and train.threads, or what auto picks.

    auto workers: the ranks under mpiexec; else one per core (at most one per track) when a worker's share
    of a step is at least MIN_STEP_WORK multiply-adds and the run at least MIN_RUN_WORK, otherwise one.
    auto threads: the cores shared out among this machine's workers, at least one.
    Raises ConfigError when train.workers cannot be honoured.
    """
    t = cfg.train
    available = cores() if available is None else available
    # the workers that share this machine's cores: under mpiexec, the ranks on this host
    here = (_env_int(MPI_LOCAL_SIZE_VARS) or ranks) if ranks > 1 else None
    if ranks > 1:
        if t.workers not in ("auto", ranks):
            raise ConfigError(
                f"train.workers: {t.workers} conflicts with the {ranks} ranks mpiexec started (one worker each); "
                f"set it to auto or {ranks}"
            )
        workers, reason = ranks, "mpiexec ranks"
    elif t.workers == "auto":
        work = step_work(cfg, vocab_size)
        workers = max(1, min(available, t.batch_size))
        if workers > 1 and (work / workers < MIN_STEP_WORK or work * t.steps < MIN_RUN_WORK):
            workers, reason = 1, "auto: too small a model to gain from more processes"
        else:
            reason = "auto: one per core" if workers == available else "auto: one per track"
    else:
        workers, reason = int(t.workers), "train.workers"
    if workers > t.batch_size:
        raise ConfigError(
            f"train.workers: {workers} workers need at least as many tracks, train.batch_size is {t.batch_size}"
        )
    threads = max(1, available // (here or workers)) if t.threads == "auto" else int(t.threads)
    return Plan(workers, threads, reason)


def track_slices(batch_size: int, workers: int) -> list[slice]:
    """Whole tracks for each worker, as even as can be: 50 tracks over 3 workers -> 17, 17, 16.

    >>> track_slices(5, 2)
    [slice(0, 3, None), slice(3, 5, None)]
    """
    base, extra = divmod(batch_size, workers)
    starts = [w * base + min(w, extra) for w in range(workers + 1)]
    return [slice(a, b) for a, b in zip(starts, starts[1:])]


class Workers:
    """Worker 0 alone: nothing to share or sum. The groups below extend it with other processes.

    The training loop talks to every group through these calls only: `lead` before each step, then
    `loss_and_grads`, then the same update on every worker.
    """

    rank = 0
    size = 1

    def __init__(self, plan: Plan):
        self.plan = plan
        self.sum_seconds = 0.0  # worker 0's time summing the steps' parts, once every part was there
        self.sums = 0

    def tracks(self, batch_size: int) -> slice:
        """This worker's tracks."""
        return track_slices(batch_size, self.size)[self.rank]

    def share(self, meta: dict | None, arrays: dict[str, np.ndarray]) -> dict:
        """Worker 0's state for all: worker 0 passes its checkpoint meta and arrays, the others receive them
        into their own `arrays` and get the meta back."""
        assert meta is not None
        return meta

    def lead(self, go: bool = False, lr: float = 0.0) -> tuple[bool, float]:
        """Worker 0 says whether there is a next step and its learning rate; every worker returns the same."""
        return go, lr

    def add(self, values: np.ndarray) -> np.ndarray:
        """The sum over the workers of a few float64 values (at most ADD_SLOTS), the same on every worker."""
        return values

    def loss_and_grads(
        self,
        model: StackedRNN,
        inputs: np.ndarray,
        targets: np.ndarray,
        h: np.ndarray,
        dropout: float,
        rng: np.random.Generator | None,
    ) -> tuple[float, dict[str, np.ndarray], np.ndarray]:
        """Loss, gradients and last hidden state of the whole batch; inputs and targets (T, B_w) are this
        worker's tracks, h (L, B, H) every track's state."""
        return model.loss_and_grads(inputs, targets, h, dropout, rng)

    def close(self, failed: bool = False) -> None:
        pass


class _Group(Workers):
    """Workers that sum parts: each packs its gradients, its loss and its tracks' states into flat buffers,
    `_sum` adds the buffers of all workers, and every worker unpacks the same total."""

    def __init__(self, plan: Plan, rank: int, size: int):
        super().__init__(plan)
        self.rank, self.size = rank, size
        self._layout: dict[str, tuple[int, tuple[int, ...]]] = {}

    def _buffers(self, n32: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Where this worker packs its part (float32: gradients, then states; float64: the loss) and where the
        total lands; made once."""
        raise NotImplementedError

    def _sum(self) -> None:
        """Add every worker's part into the total, in rank order, so every worker gets the same bits."""
        raise NotImplementedError

    def loss_and_grads(self, model, inputs, targets, h, dropout, rng):
        T = inputs.shape[0]
        L, B, H = h.shape
        mine = self.tracks(B)
        loss, grads, h_last = model.loss_and_grads(inputs, targets, h[:, mine], dropout, rng, mean_over=T * B)
        if not self._layout:
            at = 0
            for name, g in grads.items():
                self._layout[name] = (at, g.shape)
                at += g.size
            self._n_grads = at
            self._part32, self._part64, self._total32, self._total64 = self._buffers(at + L * B * H)
            self._grads = {k: self._total32[a : a + int(np.prod(s))].reshape(s) for k, (a, s) in self._layout.items()}
            self._h_part = self._part32[at:].reshape(L, B, H)
        for name, g in grads.items():
            a, shape = self._layout[name]
            self._part32[a : a + g.size] = g.reshape(-1)
        self._h_part.fill(0)  # other workers' tracks are zero in this part: the sum is every track's state
        self._h_part[:, mine] = h_last
        self._part64[0] = loss
        self._sum()
        self.sums += 1
        return float(self._total64[0]), self._grads, self._total32[self._n_grads :].reshape(L, B, H).copy()


# ---- workers on this machine -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Shared:
    """The shared-memory blocks of a local group, by name, as a spawned worker attaches to them."""

    ids: str  # the training ids, then the validation ids
    ids_len: int  # the training ids'
    val_len: int
    ids_dtype: str
    state: str  # worker 0's state at the start (float32, state_arrays order)
    parts32: str  # (size + 1, n32) float32: every worker's part, then the total
    parts64: str  # (size + 1, ADD_SLOTS) float64


def _attach(name: str) -> SharedMemory:
    return SharedMemory(name=name)


class _LocalGroup(_Group):
    """What worker 0 and the workers it started share: the blocks, and views of this worker's part."""

    def __init__(self, plan: Plan, rank: int, size: int, shared: _Shared, blocks: dict[str, SharedMemory]):
        super().__init__(plan, rank, size)
        self.shared, self._blocks = shared, blocks

    def _buffers(self, n32):
        self._parts32 = np.ndarray((self.size + 1, n32), np.float32, buffer=self._blocks["parts32"].buf)
        # the total is copied out of shared memory: clipping scales it in place, privately
        return self._parts32[self.rank], self._parts64[self.rank, :1], np.empty(n32, np.float32), np.empty(1)

    @property
    def _parts64(self) -> np.ndarray:
        return np.ndarray((self.size + 1, ADD_SLOTS), np.float64, buffer=self._blocks["parts64"].buf)

    def _sum(self):
        self._exchange(self._parts32, self._parts64)
        np.copyto(self._total32, self._parts32[self.size])
        np.copyto(self._total64, self._parts64[self.size, :1])

    def add(self, values):
        parts = self._parts64
        parts[self.rank, : len(values)] = values
        self._exchange(parts)
        return parts[self.size, : len(values)].copy()

    def _exchange(self, *parts: np.ndarray) -> None:
        """Every worker's row of each `parts` summed into its last row, once all have written theirs."""
        raise NotImplementedError

    def _state_views(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Views of the shared state block laid out as `arrays`, in their order."""
        flat = np.ndarray((sum(a.size for a in arrays.values()),), np.float32, buffer=self._blocks["state"].buf)
        views, at = {}, 0
        for name, a in arrays.items():
            views[name] = flat[at : at + a.size].reshape(a.shape)
            at += a.size
        return views

    def train_ids(self) -> np.ndarray:
        """The training ids, shared: held once for all the workers on this machine."""
        return self._ids()[: self.shared.ids_len]

    def val_ids(self) -> np.ndarray:
        return self._ids()[self.shared.ids_len :]

    def _ids(self) -> np.ndarray:
        s = self.shared
        return np.ndarray((s.ids_len + s.val_len,), np.dtype(s.ids_dtype), buffer=self._blocks["ids"].buf)

    def _release(self) -> None:
        # numpy views must go before a block can close; a caller's view of the ids closes it when it goes
        for name in ("_parts32", "_part32", "_part64", "_h_part", "_grads"):
            self.__dict__.pop(name, None)
        for block in self._blocks.values():
            with contextlib.suppress(BufferError):
                block.close()


class LocalLead(_LocalGroup):
    """Worker 0 of `plan.workers` processes on this machine: starts the others, sums all parts in shared memory.

    `entry(connection, rank, plan, cfg, vocab_size, shared)` is what each started worker runs (a function
    importable by name: processes start fresh, as multiprocessing's spawn does everywhere).
    """

    def __init__(
        self,
        plan: Plan,
        cfg: Config,
        vocab_size: int,
        train_ids: np.ndarray,
        val_ids: np.ndarray,
        state_arrays: dict[str, np.ndarray],
        entry: Callable,
    ):
        size = plan.workers
        model_floats = sum(a.size for k, a in state_arrays.items() if k.startswith("param/"))
        L, B, H = state_arrays["h"].shape
        n32 = model_floats + L * B * H
        blocks: dict[str, SharedMemory] = {}
        try:
            for name, nbytes in (
                ("ids", max(train_ids.nbytes + val_ids.nbytes, 1)),
                ("state", 4 * sum(a.size for a in state_arrays.values())),
                ("parts32", 4 * (size + 1) * n32),
                ("parts64", 8 * (size + 1) * ADD_SLOTS),
            ):
                blocks[name] = SharedMemory(create=True, size=nbytes)
        except OSError as err:
            for block in blocks.values():
                block.close()
                block.unlink()
            raise CharrnnError(
                f"cannot share memory with the workers ({err.strerror or err}); set train.workers: 1"
            ) from None
        ids = np.ndarray((len(train_ids) + len(val_ids),), train_ids.dtype, buffer=blocks["ids"].buf)
        ids[: len(train_ids)], ids[len(train_ids) :] = train_ids, val_ids
        shared = _Shared(
            blocks["ids"].name, len(train_ids), len(val_ids), train_ids.dtype.str, blocks["state"].name,
            blocks["parts32"].name, blocks["parts64"].name,
        )  # fmt: skip
        super().__init__(plan, 0, size, shared, blocks)
        self._processes: list = []
        self._conns: list[Connection] = []
        context = multiprocessing.get_context("spawn")
        # the started workers ignore Ctrl-C and SIGTERM: worker 0 stops them all at a step boundary
        ignoring = threading.current_thread() is threading.main_thread()
        saved = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)} if ignoring else {}
        try:
            for rank in range(1, size):
                mine, theirs = context.Pipe()
                process = context.Process(
                    target=entry, args=(theirs, rank, plan, cfg, vocab_size, shared), name=f"charrnn-worker-{rank}"
                )
                process.daemon = True  # a worker never outlives worker 0's interpreter
                process.start()
                theirs.close()
                self._processes.append(process)
                self._conns.append(mine)
        except BaseException:
            self.close(failed=True)
            raise
        finally:
            for s, handler in saved.items():
                signal.signal(s, handler)

    def _receive(self, rank: int) -> tuple:
        conn, process = self._conns[rank - 1], self._processes[rank - 1]
        try:
            message = conn.recv()
        except (EOFError, OSError):
            process.join(timeout=2)
            code = process.exitcode
            how = f"killed by signal {-code}" if code and code < 0 else f"exit code {code}"
            raise CharrnnError(f"worker {rank} (pid {process.pid}) stopped unexpectedly ({how})") from None
        if message[0] == "error":
            raise CharrnnError(f"worker {rank} (pid {process.pid}) failed: {message[1]}")
        return message

    def _send_all(self, message: tuple) -> None:
        for rank, conn in enumerate(self._conns, start=1):
            try:
                conn.send(message)
            except OSError:
                self._receive(rank)  # says how it died
                raise

    def share(self, meta, arrays):
        assert meta is not None
        for name, view in self._state_views(arrays).items():
            view[...] = arrays[name]
        self._send_all(("start", meta))
        for rank in range(1, self.size):
            self._receive(rank)  # ("ready",)
        return meta

    def lead(self, go=False, lr=0.0):
        self._send_all(("step", lr) if go else ("stop",))
        return go, lr

    def _exchange(self, *parts):
        for rank in range(1, self.size):
            self._receive(rank)  # ("done",)
        started = time.perf_counter()
        for p in parts:
            np.add(p[0], p[1], out=p[self.size])
            for rank in range(2, self.size):
                p[self.size] += p[rank]
        self._send_all(("summed",))
        self.sum_seconds += time.perf_counter() - started

    def close(self, failed=False):
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.send(("stop",))
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
        for conn in self._conns:
            conn.close()
        self._processes, self._conns = [], []
        blocks = list(self._blocks.values())
        self._release()
        for block in blocks:
            block.unlink()
        self._blocks = {}


class LocalFollower(_LocalGroup):
    """A worker that worker 0 started on this machine; it talks to worker 0 only, through its pipe."""

    def __init__(self, conn: Connection, rank: int, plan: Plan, shared: _Shared):
        blocks = {name: _attach(getattr(shared, name)) for name in ("ids", "state", "parts32", "parts64")}
        super().__init__(plan, rank, plan.workers, shared, blocks)
        self.conn = conn

    def _expect(self, *kinds: str) -> tuple:
        """The next message from worker 0; a stop, or worker 0 gone, ends this worker."""
        try:
            message = self.conn.recv()
        except (EOFError, OSError):
            raise SystemExit(1) from None  # worker 0 died: so does its worker, never an orphan
        if message[0] not in kinds:
            raise SystemExit(0)  # told to stop, wherever it was
        return message

    def share(self, meta, arrays):
        _, meta = self._expect("start")
        for name, view in self._state_views(arrays).items():
            arrays[name][...] = view
        self.conn.send(("ready",))
        return meta

    def lead(self, go=False, lr=0.0):
        message = self._expect("step", "stop")
        return (True, message[1]) if message[0] == "step" else (False, 0.0)

    def _exchange(self, *parts):
        self.conn.send(("done",))
        self._expect("summed")

    def fail(self, err: BaseException) -> None:
        """Tell worker 0 why this worker stops: its error line names it."""
        with contextlib.suppress(OSError):
            self.conn.send(("error", str(err) or type(err).__name__))

    def close(self, failed=False):
        self._release()
        self.conn.close()
