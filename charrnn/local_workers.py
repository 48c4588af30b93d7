"""Workers on one machine: worker 0 starts the others as processes; they sum their parts in shared memory.

Worker 0 and each other worker talk over a pipe: worker 0 says "step" (with the learning rate) or "stop",
a worker says "done" when its part is written, worker 0 sums every part in rank order and says "summed".
A worker blocks on its pipe, which closes when worker 0 dies, so no worker outlives it; worker 0 sees a
dead worker as a closed pipe and stops the run with one line.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory

import numpy as np

from .config import Config
from .errors import CharrnnError
from .parallel import ADD_SLOTS, Group, Plan


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


class _LocalGroup(Group):
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

    def lead(self, go=False, lr=0.0, steps=0):
        self._send_all(("step", lr, steps) if go else ("stop",))
        return go, lr, steps

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
        blocks = {name: SharedMemory(name=getattr(shared, name)) for name in ("ids", "state", "parts32", "parts64")}
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

    def lead(self, go=False, lr=0.0, steps=0):
        message = self._expect("step", "stop")
        return (True, message[1], message[2]) if message[0] == "step" else (False, 0.0, 0)

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
