"""Shared tables of the compiled step: node op codes, the columns of the ``meta`` and ``gat`` tables, and the
integer shift helpers (exactly :mod:`neurocompile.sim.fixed`'s rounding) that every numba kernel inlines."""

from __future__ import annotations

import numpy as np
from numba import njit

# node op codes
INPUT, EMBEDDING, DENSE, MODEBANK, READOUT, LIF, HEAVISIDE, REFRACTORY, LUT, MUL, TERNARIZE, ADD, ACCUMULATE, \
    LAVALIF, LAYERNORM = range(15)

# columns of ``meta`` (one row per node run every step)
OP, SIZE, OUT, LIM, P0, P1, STO, PRM, NZO, ACTIVE, SPK, REC, XIN, G0, G1, SAT, SEQ, EVO, EVQ, XEV, EV0, EV1, A0 = \
    range(23)
# SEQ: where the node writes its output sequence [B, T, size] in ``seq`` (-1: not kept); EVO: its synaptic-event
# slots in ``ev`` (a synapse-only dense; -1: none); EVQ / XEV: where its event sequence is written to ``seq`` /
# read from ``xin`` (-1: none); EV0, EV1: the range of ``evs`` listing the event slots its active count ORs
NA = 10  # op-specific scalars A0 .. A0 + NA - 1
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
