"""Starting a run's workers, and what each runs: worker 0's group, a started worker's life, MPI ranks.

See charrnn.parallel for how the workers share a step.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from threadpoolctl import threadpool_limits

from . import parallel
from .config import Config
from .data import Corpus
from .errors import CharrnnError
from .local_workers import LocalFollower, LocalLead
from .training import TrainState, follow, new_state, restore_state, state_arrays

if TYPE_CHECKING:
    from .mpi import MpiWorkers


def start_here(plan: parallel.Plan, cfg: Config, corpus: Corpus, state: TrainState) -> parallel.Workers:
    """Worker 0's group on this machine: itself alone, or with the processes it starts now."""
    if plan.workers == 1:
        return parallel.Workers(plan)
    lead = LocalLead(plan, cfg, corpus.vocab.size, corpus.train, corpus.val, state_arrays(state), follow_here)
    # train from the shared copy, and let the stream the text was loaded into go: memory holds the text once
    corpus.train, corpus.val = lead.train_ids(), lead.val_ids()
    return lead


def follow_here(conn, rank: int, plan: parallel.Plan, cfg: Config, vocab_size: int, shared) -> None:
    """What a worker that worker 0 started on this machine runs: follow it until it stops."""
    workers = LocalFollower(conn, rank, plan, shared)
    try:
        with blas_threads(plan.threads):
            state = new_state(cfg, vocab_size)
            arrays = state_arrays(state)
            restore_state(state, workers.share(None, arrays), arrays)
            follow(cfg, workers.train_ids(), workers.val_ids(), state, workers)
    except Exception as err:
        workers.fail(err)
        raise SystemExit(1) from None
    finally:
        workers.close()


def connect_mpi(ranks: int) -> MpiWorkers:
    """This rank's group under mpiexec; the first thing every rank does, as every later failure is shared."""
    try:
        from . import mpi
    except ImportError as err:
        raise CharrnnError(
            f"charrnn train runs under mpiexec ({ranks} ranks) but cannot load MPI ({err}); "
            "install it with: pip install 'charrnn[mpi]'"
        ) from None
    return mpi.MpiWorkers()


def follow_mpi(cfg: Config, corpus: Corpus, group: MpiWorkers) -> None:
    """A rank other than 0: follow rank 0, which alone talks to the user and the disk."""
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)  # mpiexec passes Ctrl-C to every rank: rank 0 stops them all
    with blas_threads(group.plan.threads):
        state = new_state(cfg, corpus.vocab.size)
        arrays = state_arrays(state)
        restore_state(state, group.share(None, arrays), arrays)
        follow(cfg, corpus.train, corpus.val, state, group)
    group.close()


@contextmanager
def blas_threads(threads: int) -> Iterator[None]:
    """BLAS threads of this process while training, through threadpoolctl (OpenBLAS, MKL, BLIS alike)."""
    with threadpool_limits(limits=threads, user_api="blas"):
        yield
