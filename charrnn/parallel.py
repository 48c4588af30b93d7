"""Data-parallel training: the batch's tracks split over workers, their gradients summed, one step everywhere.

Every worker holds the same weights and optimizer state. At each step every worker computes the loss and
gradients of its own tracks as its part of the mean over all T·B positions; the parts are summed, and every
worker clips and steps with the same sum, so the weights stay the same everywhere: the single-process math,
with only the order of the sums changed. Worker 0 (the process the user started, or MPI rank 0) alone
decides whether there is a next step and at which learning rate, validates, saves and reports; the others
follow its lead (`training.follow`).

On one machine the other workers are processes started here, which sum through shared memory
(`charrnn.local_workers`); under `mpiexec` each rank is one worker, and they sum with MPI Allreduce
(`charrnn.mpi`, imported only there). `charrnn.workers` starts them and says what each runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .cells import CELLS
from .config import Config
from .errors import ConfigError
from .model import StackedRNN

# auto starts more workers only where they pay (bench/speed.py's break-even row, docs/parallel.md):
MIN_TRACKS = 8  # tracks per worker: thinner slices make the per-step products run badly
MIN_PRODUCT = 5e4  # multiply-adds of a worker's (B/W, H)·(H, G*H) product: below, calls cost more than the core gains
MIN_RUN_WORK = 2e10  # multiply-adds of the whole run: below, starting the processes costs more than they save
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
    G = CELLS[cfg.model.cell].GATES
    per_char = 3 * (G * (2 * L - 1) * H * H + H * V)
    return float(cfg.train.seq_length * cfg.train.batch_size * per_char)


def plan(cfg: Config, vocab_size: int, ranks: int = 1, available: int | None = None) -> Plan:
    """Workers and threads for this run: train.workers and train.threads, or what auto picks.

    auto workers: the ranks under mpiexec; else one per core, as long as each keeps MIN_TRACKS tracks and its
    share of each time step's (B, H)·(H, G*H) product (G gate blocks) is MIN_PRODUCT multiply-adds, and the run
    is at least MIN_RUN_WORK; otherwise one. auto threads: the cores shared out among this machine's workers, at
    least one.
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
        H, G = cfg.model.hidden_size, CELLS[cfg.model.cell].GATES
        workers = max(1, min(available, t.batch_size // MIN_TRACKS))
        while workers > 1 and t.batch_size / workers * H * G * H < MIN_PRODUCT:
            workers -= 1
        # train.steps: auto is fixed once training runs: a budget counts as long enough
        if workers > 1 and t.steps != "auto" and step_work(cfg, vocab_size) * int(t.steps) < MIN_RUN_WORK:
            workers = 1
        if workers == 1:
            reason = "auto: too small a model or run to gain from more processes" if available > 1 else "auto"
        else:
            reason = "auto: one per core" if workers == available else "auto: as many as the model gains from"
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

    The training loop talks to every group through these calls only: `share` once (worker 0's state for
    all), `lead` before each step, `loss_and_grads` in it (then the same update on every worker), `add` at
    each validation, `close` at the end.
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

    def lead(self, go: bool = False, lr: float = 0.0, steps: int = 0) -> tuple[bool, float, int]:
        """Worker 0 says whether there is a next step, its learning rate and the run's count of steps (0 while
        train.steps: auto has not fixed it: the last step validates); every worker returns the same."""
        return go, lr, steps

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


class Group(Workers):
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
            a = self._layout[name][0]
            self._part32[a : a + g.size] = g.reshape(-1)
        self._h_part.fill(0)  # other workers' tracks are zero in this part: the sum is every track's state
        self._h_part[:, mine] = h_last
        self._part64[0] = loss
        self._sum()
        self.sums += 1
        return float(self._total64[0]), self._grads, self._total32[self._n_grads :].reshape(L, B, H).copy()
