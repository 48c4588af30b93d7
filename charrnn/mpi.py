"""Workers as MPI ranks: under `mpiexec -n N charrnn train CONFIG` each rank is one worker.

Imported only when charrnn runs under mpiexec (`pip install 'charrnn[mpi]'` brings mpi4py and an MPI).
Every rank reads the config and data.path itself; rank 0 leads, and alone talks to the user and writes the
run directory. Each step sums the workers' parts with one Allreduce of a flat float32 buffer (gradients,
then the tracks' states) and one of a float64 (the loss), buffer calls rather than pickled objects.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from typing import TypeVar

import numpy as np
from mpi4py import MPI

from .errors import CharrnnError, DataError
from .parallel import Group, Plan

T = TypeVar("T")


def _quiet(code: int) -> CharrnnError:
    """How a rank other than 0 fails: with rank 0's exit code; only rank 0 prints (commands/train.py)."""
    err = CharrnnError("")
    err.exit_code = code
    return err


class MpiWorkers(Group):
    def __init__(self, comm=None):
        self.comm = comm or MPI.COMM_WORLD
        super().__init__(Plan(self.comm.Get_size(), 1, "mpiexec ranks"), self.comm.Get_rank(), self.comm.Get_size())
        self.waiting = True  # the other ranks wait for rank 0's state (share) or word to stop (abort)
        self._stepping = False  # between lead() and the step's sum: the ranks are in different calls

    def agree(self, work: Callable[[], T]) -> T:
        """work() on every rank; when it fails on any, it fails on all (rank 0 says where), so that no rank
        waits for another that has given up."""
        try:
            result, failure = work(), None
        except CharrnnError as err:
            result, failure = None, (str(err), err.exit_code, socket.gethostname())
        failed = next(((rank, f) for rank, f in enumerate(self.comm.allgather(failure)) if f is not None), None)
        if failed is not None:
            rank, (message, code, host) = failed
            if self.rank > 0:
                raise _quiet(code)
            error = CharrnnError(message if rank == 0 else f"rank {rank} on {host}: {message}")
            error.exit_code = code
            raise error
        return result  # type: ignore[return-value]  # None only where an error was raised

    def same_data(self, sha256: str, path: str) -> None:
        """Every rank must train on the same text: a different file at data.path on one machine stops the run."""
        digests = self.comm.allgather((sha256, socket.gethostname()))
        differ = [(rank, host) for rank, (digest, host) in enumerate(digests) if digest != digests[0][0]]
        if differ:
            if self.rank > 0:
                raise _quiet(DataError.exit_code)
            listed = ", ".join(f"rank {rank} on {host}" for rank, host in differ)
            raise DataError(
                f"{path}: {listed} read a different text than rank 0 on {digests[0][1]} (sha256 differs); "
                "every rank must read the same file: put it on a path all machines share"
            )

    def share(self, meta, arrays):
        meta = self.comm.bcast(meta, root=0)
        self.waiting = False
        if "abort" in meta:
            raise _quiet(meta["abort"])
        for a in arrays.values():
            self.comm.Bcast(np.ascontiguousarray(a) if self.rank == 0 else a, root=0)
        return meta

    def abort(self, code: int) -> None:
        """Rank 0 failed before training: the others stop with its exit code."""
        self.share({"abort": code}, {})

    def lead(self, go=False, lr=0.0, steps=0):
        word = np.array([go, lr, steps], np.float64)  # a count of steps is exact in float64
        self.comm.Bcast(word, root=0)
        self._stepping = bool(word[0])
        return self._stepping, float(word[1]), int(word[2])

    def add(self, values):
        total = np.array(values, np.float64)
        self.comm.Allreduce(MPI.IN_PLACE, total, op=MPI.SUM)
        return total

    def _buffers(self, n32):
        part32, part64 = np.empty(n32, np.float32), np.empty(1, np.float64)
        return part32, part64, part32, part64  # summed in place

    def _sum(self):
        self.comm.Barrier()  # so that sum_seconds times the sums, not the wait for the slowest rank
        started = MPI.Wtime()
        self.comm.Allreduce(MPI.IN_PLACE, self._part32, op=MPI.SUM)
        self.comm.Allreduce(MPI.IN_PLACE, self._part64, op=MPI.SUM)
        self.sum_seconds += MPI.Wtime() - started
        self._stepping = False

    def close(self, failed=False):
        if self.rank > 0 or self.waiting:
            return
        if self._stepping:
            # rank 0 failed inside a step, while the others wait in its sum: nothing but an abort frees them
            print("charrnn: rank 0 failed inside a step; stopping every rank", file=sys.stderr, flush=True)
            self.comm.Abort(1)
        self.lead(False)  # the others wait for the next step: tell them there is none
