"""numba passes over whole chunks of rows (samples x steps) for the nodes that the compiled step runs node-major.

A dense layer's exact float product is finished (bias, shift, saturation), its synaptic events found, and any
kept sequence counted here, each in one compiled pass (NumPy would take several over the same rows). The
arithmetic is that of :mod:`neurocompile.sim.kernels`; :mod:`neurocompile.sim.compiled` calls these.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from neurocompile.sim.compiled_ops import _clip, _rfloor, _rround, refresh_stale_caches


@njit(cache=True, inline="always")
def _finish_row(acc, bias, shift, floor, lim, out):
    """out = sat(rsh(int64(acc) + bias, shift)) over one row's outputs; saturations."""
    ns = 0
    for o in range(out.shape[0]):
        v = np.int64(acc[o]) + bias[o]
        v = _rfloor(v, shift[o]) if floor else _rround(v, shift[o])
        v, c_ = _clip(v, lim)
        ns += c_
        out[o] = v
    return ns


@njit(cache=True, nogil=True)
def dense_finish(acc, bias, shift, floor, lim, out):
    """out = sat(rsh(int64(acc) + bias, shift)) over rows [rows, n_out] of an exact float product; saturations."""
    ns = 0
    for r in range(acc.shape[0]):
        ns += _finish_row(acc[r], bias, shift, floor, lim, out[r])
    return ns


@njit(cache=True, inline="always")
def _events_row(idx, k, stored, ev, r):
    """ev[r, o] = OR over the k non-zero inputs idx[:k] of stored[i, o] (uint8), stopping once every output has
    one: with dense weights after the first input or two."""
    n_out = stored.shape[1]
    uo = np.uint64(n_out)
    if k == 0:
        for o in range(uo):
            ev[r, o] = 0
        return
    got = 0
    for o in range(uo):
        e = np.int64(stored[idx[0], o])
        ev[r, o] = e
        got += e
    j = 1
    while got < n_out and j < k:
        got = 0
        for o in range(uo):
            e = ev[r, o] | stored[idx[j], o]
            ev[r, o] = e
            got += e
        j += 1


@njit(cache=True, nogil=True)
def dense_sparse(x, wt, bias, shift, floor, lim, out, nz, z, stored, ev):
    """The same rows as a BLAS product then :func:`dense_finish`, event-driven: per row, the weight rows
    wt[i] = W[:, i] of its non-zero inputs x[r, i] are added (a spike adds its row, no multiply), as a Loihi
    core does. The sums are int32 (16 to a vector): exact, for the plan bounded every partial sum below 2^24
    (its float32 path); ``wt`` is int8, int16 or int32, the narrowest that holds the weights (their reads bound
    the loop). Faster than the product below about a quarter of inputs non-zero.

    Counts on the way, while the row is in cache: z >= 0, non-zero outputs per index into nz[z:]; ``ev`` not
    empty, the row's synaptic events as :func:`dense_events` finds them (from the same non-zero inputs).
    Rows are indexed in place, not sliced (a slice per input costs reference count updates)."""
    rows, n_in = x.shape
    n_out = wt.shape[1]
    uo = np.uint64(n_out)
    acc = np.empty(n_out, np.int32)
    idx = np.empty(n_in, np.uint64)
    ns = 0
    for r in range(rows):
        k = 0
        for i in range(n_in):  # the non-zero inputs' indices, branch-free
            idx[k] = i
            k += x[r, i] != 0
        for o in range(uo):
            acc[o] = 0
        for j in range(k):
            i = idx[j]
            v = x[r, i]
            if v == 1:
                for o in range(uo):
                    acc[o] = np.int32(acc[o] + wt[i, o])
            else:
                vw = np.int32(v)
                for o in range(uo):
                    acc[o] = np.int32(acc[o] + wt[i, o] * vw)
        orow = out[r]
        ns += _finish_row(acc, bias, shift, floor, lim, orow)
        if z >= 0:
            uz = np.uint64(z)
            for o in range(uo):
                nz[uz + o] += np.int64(orow[o] != 0)
        if ev.shape[0]:
            _events_row(idx, k, stored, ev, r)
    return ns


@njit(cache=True, nogil=True)
def dense_events(x, stored, out):
    """out[r, o] = 1 when a stored synapse (stored[i, o] = 1, uint8: W[o, i] != 0) got a non-zero input x[r, i]:
    Loihi's events (:func:`_events_row` per row)."""
    rows, n_in = x.shape
    idx = np.empty(n_in, np.uint64)
    for r in range(rows):
        k = 0
        for i in range(n_in):
            idx[k] = i
            k += x[r, i] != 0
        _events_row(idx, k, stored, out, r)


@njit(cache=True, nogil=True)
def count_seq(y, nz, z, spk, si, counters):
    """Non-zero outputs per index (into nz[z:]) and per step (into spk[si], si >= 0) of a sequence [B, T, n]."""
    B, T, n = y.shape
    for b in range(B):
        for t in range(T):
            tot = 0
            if counters:
                for i in range(n):  # branch-free, so that it vectorises
                    c = np.int64(y[b, t, i] != 0)
                    nz[z + i] += c
                    tot += c
            else:
                for i in range(n):
                    tot += np.int64(y[b, t, i] != 0)
            if si >= 0:
                spk[si, t] += tot


@njit(cache=True, nogil=True)
def quantize_input(x, scale, lim, out):
    """out = sat(round_half_away(x / scale)) over inputs [B, T, d] in one pass (the QInput quantiser of
    :func:`neurocompile.sim.fixed.quantize_round` and :func:`~neurocompile.sim.fixed.sat`, the same float64
    operations in the same order); lim < 0: no saturation. Returns the values clipped, or -1 at a value that is
    not finite or beyond int64 (the caller then takes NumPy's path, which defines those)."""
    B, T, d = x.shape
    big = 9.223372036854775807e18
    ns = 0
    for b in range(B):
        for t in range(T):
            for c in range(d):
                v = np.float64(x[b, t, c]) / scale
                q = np.sign(v) * np.floor(np.abs(v) + 0.5)
                if not (-big < q < big):  # NaN fails both tests
                    return -1
                y, clipped = _clip(np.int64(q), lim)
                out[b, t, c] = y
                ns += clipped
    return ns


refresh_stale_caches(globals(), ("compiled_ops.py",))  # helpers inlined from these files
