"""How the compiled engine uses the host: large scratch arrays lent and taken back (reused, not faulted in
again), and BLAS held to one thread.

Scratch: a fresh multi-megabyte NumPy array is fresh pages: the kernel zeroes each 4 KiB page on its first write (a page
fault each). The compiled engine's per-chunk buffers (kept output sequences, float copies and products of whole
dense layers) are scratch: nothing reads them after the call that filled them. Taken from :data:`POOL` and given
back when done, they are written again instead of faulted in again: measured on the 4-layer H = 256 throughput
model, 48,000 page faults per ``simulate`` call became a few thousand (benchmarks/sim_throughput.py).

Only arrays that :meth:`ScratchPool.take` lent are taken back (any view of one gives the whole one back); the
pool keeps at most ``limit`` bytes, dropping the longest unused first, so that memory goes back to the allocator.
Between ``simulate`` calls the free arrays stay for the next call (a sweep or a benchmark's repeats: about
0.025 s of the 0.37 s throughput run); a one-shot run (``neurocompile simulate``, ``report``) clears the pool
after its simulation, so that the float comparison that follows does not stack on it (measured on one 16,384-step
sequence of the H = 512 x 6 artifact: 838 MB peak RSS keeping it, 627 MB clearing it).
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections import OrderedDict
from typing import Any

import numpy as np

Array = np.ndarray

MIN_BYTES = 1 << 20  # smaller arrays come from malloc's own free lists, without page faults
LIMIT_BYTES = 512 << 20  # free scratch kept at most (about one H = 1,024 model's chunk buffers)


class ScratchPool:
    """Uninitialised 1-D scratch arrays of a dtype and at least a size, lent by :meth:`take` and taken back by
    :meth:`give`; thread-safe (batches run in parallel threads)."""

    def __init__(self, limit: int = LIMIT_BYTES, min_bytes: int = MIN_BYTES) -> None:
        self.limit, self.min_bytes = limit, min_bytes
        self._free: OrderedDict[int, Array] = OrderedDict()  # id -> array, least recently given first
        # lent arrays by id, weakly: one never given back is freed as usual when its last user lets go
        self._lent: weakref.WeakValueDictionary[int, Array] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()

    def take(self, n: int, dtype: type | np.dtype = np.int64) -> Array:
        """An array of ``n`` elements (uninitialised): a view of the smallest free one that holds them, at most
        twice as large, or a new one."""
        dt = np.dtype(dtype)
        if n * dt.itemsize < self.min_bytes:
            return np.empty(n, dt)
        with self._lock:
            best = None
            for key, a in self._free.items():
                if a.dtype == dt and n <= a.size <= 2 * n and (best is None or a.size < self._free[best].size):
                    best = key
            a = self._free.pop(best) if best is not None else np.empty(n, dt)
            self._lent[id(a)] = a
        return a[:n]

    def give(self, *arrays: Array | None) -> None:
        """Take back arrays that :meth:`take` lent (or views of them); others are ignored. The caller must not
        use them, or any view of them, again."""
        with self._lock:
            for a in arrays:
                root = a
                while isinstance(root, np.ndarray) and root.base is not None:
                    root = root.base
                if root is None or self._lent.get(id(root)) is not root:
                    continue
                self._free[id(root)] = self._lent.pop(id(root))
            total = sum(a.nbytes for a in self._free.values())
            while total > self.limit and self._free:
                _, dropped = self._free.popitem(last=False)
                total -= dropped.nbytes

    def clear(self) -> None:
        """Drop every free array (memory back to the allocator); arrays still lent are not affected."""
        with self._lock:
            self._free.clear()

    def free_bytes(self) -> int:
        """Bytes held free for the next take."""
        with self._lock:
            return sum(a.nbytes for a in self._free.values())


POOL = ScratchPool()
_BLAS: list[Any] = []  # threadpoolctl's controller of the loaded BLAS, made on first use (None without it)


def one_blas_thread() -> Any:
    """A context in which BLAS runs on one thread (a no-op without threadpoolctl).

    The simulator's parallelism is ``simulate(threads=N)``; inside it a BLAS that starts worker threads for the
    whole-chunk products waits for them whenever the machine is shared: measured on this 2-core machine under
    load, a 2048-row float32 product took 3.9 ms instead of 0.06 ms (32 x 32) and 7.9 ms instead of 3.2 ms
    (256 x 256), medians of 200, with OpenBLAS's two threads against one. Results do not depend on it."""
    if not _BLAS:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _BLAS.append(None)
        else:
            _BLAS.append(ThreadpoolController())
    return contextlib.nullcontext() if _BLAS[0] is None else _BLAS[0].limit(limits=1, user_api="blas")
