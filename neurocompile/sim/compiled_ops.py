"""Shared tables of the compiled step: node op codes, the columns of the ``meta`` and ``gat`` tables, and the
integer shift helpers (exactly :mod:`neurocompile.sim.fixed`'s rounding) that every numba kernel inlines."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from numba import njit

# node op codes
INPUT, EMBEDDING, DENSE, MODEBANK, READOUT, LIF, HEAVISIDE, REFRACTORY, LUT, MUL, TERNARIZE, ADD, ACCUMULATE, \
    LAVALIF, LAYERNORM = range(15)

# columns of ``meta`` (one row per node run every step)
OP, SIZE, OUT, LIM, P0, P1, STO, PRM, NZO, ACTIVE, SPK, REC, XIN, G0, G1, SAT, SEQ, EVO, EVQ, EV0, EV1, A0 = \
    range(22)
# SEQ: where the node writes its output sequence [B, T, size] in ``seq`` (-1: not kept); EVO: its synaptic-event
# slots in ``ev`` (a synapse-only dense; -1: none); EVQ: where its event sequence is written to ``seq`` (-1:
# none); EV0, EV1: the range of ``evs`` (and of a chunk's ``evx``) listing the event slots its active count ORs
NA = 12  # op-specific scalars A0 .. A0 + NA - 1
NMETA = A0 + NA

# columns of ``gat`` (one row per (port, source) that is summed or delayed)
G_DST, G_SRC, G_SIZE, G_DELAY, G_RING, G_ENZ, G_FIRST = range(7)
NGAT = 7
TILE = 1  # samples stepped together (8 measured slower: one sample's state stays in cache over the chunk)


@njit(cache=True, inline="always")
def _rround(x, s):
    """rsh_round: (x + 2^(s-1)) >> s, or x << -s for s <= 0."""
    if s > 0:
        return (x + (np.int64(1) << (s - 1))) >> s
    return x << (-s)


@njit(cache=True, inline="always")
def _rfloor(x, s):
    if s > 0:
        return x >> s
    return x << (-s)


@njit(cache=True, inline="always")
def _rtrunc(x, s):
    """rsh_trunc: toward zero; (x + ((x >> 63) & (2^s - 1))) >> s for s > 0."""
    if s > 0:
        return (x + ((x >> 63) & ((np.int64(1) << s) - 1))) >> s
    return x << (-s)


@njit(cache=True, inline="always")
def _clip(v, lim):
    """sat: v clipped to [-lim, lim] (lim < 0: no saturation) and 1 if it was clipped, else 0."""
    if lim < 0:
        return v, np.int64(0)
    c = min(max(v, -lim), lim)
    return c, np.int64(c != v)


def refresh_stale_caches(namespace: dict, deps: tuple[str, ...]) -> None:
    """Flush the numba caches of a kernel module when a file it inlines code from has changed.

    numba keys a cached function by its own source file only: a kernel calling helpers from ``deps`` (files next
    to the module) would load stale machine code after an edit there, and results would silently be the old code's.
    The SHA-256 of ``deps`` is kept next to numba's cache; when it differs, every cached function of the module
    starts empty (it compiles again on first use). Call at the end of the module, before any kernel runs."""
    from numba.core.caching import FunctionCache
    from numba.core.registry import CPUDispatcher

    here = Path(namespace["__file__"]).parent
    digest = hashlib.sha256(b"".join((here / d).read_bytes() for d in deps)).hexdigest()
    name = namespace["__name__"]
    cached = [f for f in namespace.values() if isinstance(f, CPUDispatcher) and f.py_func.__module__ == name
              and isinstance(getattr(f, "_cache", None), FunctionCache)]
    if not cached:
        return
    cache_dir = cached[0]._cache.cache_path  # type: ignore[attr-defined]
    stamp = Path(cache_dir) / f"{name.rsplit('.', 1)[-1]}.deps.sha256"
    try:
        if stamp.read_text() == digest:
            return
    except OSError:
        pass
    for f in cached:
        f._cache.flush()  # type: ignore[attr-defined]
    try:
        stamp.write_text(digest)
    except OSError:
        pass  # a read-only cache: numba itself then cannot save either
