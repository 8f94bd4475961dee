"""numba kernels of the compiled step: every node type of docs/semantics.md on flat int64 arenas.

One compiled function, :func:`run_chunk`, advances a whole graph over a chunk of time steps: for each step it
walks the nodes in graph order, sums each port's sources (delayed edges through ring buffers), runs the node's
integer update and counts what the NumPy engine counts (non-zero outputs per index, active compartments,
saturations, spikes per step). There is no Python per node per step: the graph is data (an int64 table ``meta``
with one row per node, an int64 table ``gat`` with one row per port source), and the arithmetic is int64 exactly
as :mod:`neurocompile.sim.kernels` (the executable specification) computes it. Layouts are built by
:mod:`neurocompile.sim.compiled`; the column numbers below are shared with it.

Everything here is compiled once per machine (``cache=True``) and then loaded from numba's cache.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from neurocompile.sim.compiled_ops import (  # noqa: F401 (the tables are read through this module too)
    A0,
    ACCUMULATE,
    ACTIVE,
    ADD,
    DENSE,
    EMBEDDING,
    EV0,
    EV1,
    EVO,
    EVQ,
    G0,
    G1,
    G_DELAY,
    G_DST,
    G_ENZ,
    G_FIRST,
    G_RING,
    G_SIZE,
    G_SRC,
    HEAVISIDE,
    INPUT,
    LAVALIF,
    LAYERNORM,
    LIF,
    LIM,
    LUT,
    MODEBANK,
    MUL,
    NA,
    NGAT,
    NMETA,
    NZO,
    OP,
    OUT,
    P0,
    P1,
    PRM,
    READOUT,
    REC,
    REFRACTORY,
    SAT,
    SEQ,
    SIZE,
    SPK,
    STO,
    TERNARIZE,
    TILE,
    XIN,
    _clip,
    _rfloor,
    _rround,
    _rtrunc,
    refresh_stale_caches,
)
from neurocompile.sim.compiled_ssm import _modebank, _readout


@njit(cache=True, inline="always")
def _gather(k, t, B, b0, b1, meta, gat, buf, edge_nz, counters):
    """Sum the sources of node k's ports into their port buffers (delayed edges through their rings)."""
    for g in range(meta[k, G0], meta[k, G1]):
        dst, src, n, d = gat[g, G_DST], gat[g, G_SRC], gat[g, G_SIZE], gat[g, G_DELAY]
        for b in range(b0, b1):
            sb = src + b * n
            if d > 0:
                ring = gat[g, G_RING]
                w = ring + (t % (d + 1)) * B * n + b * n
                for i in range(n):
                    buf[w + i] = buf[sb + i]
                sb = ring + ((t + 1) % (d + 1)) * B * n + b * n  # slot of step t - d
                if counters:
                    e = gat[g, G_ENZ]
                    for i in range(n):
                        if buf[sb + i] != 0:
                            edge_nz[e + i] += 1
            db, us, un = np.uint64(dst + b * n), np.uint64(sb), np.uint64(n)  # unsigned: vectorised
            if gat[g, G_FIRST]:
                for i in range(un):
                    buf[db + i] = buf[us + i]
            else:
                for i in range(un):
                    buf[db + i] += buf[us + i]


@njit(cache=True)
def _dense(k, t, B, b0, b1, meta, prm, buf, st, tmp, ev, counters):
    """acc = W x + bias (zero inputs skipped: exact), rsh_round/rsh_floor per output, sat; optional pipeline.
    Parameters: W^T [n_in, n_out], bias, and per output the shift's parts half, left, right.

    A synapse-only dense (``EVO`` >= 0) with counters also records, per output, whether a synaptic event
    arrived (a stored, non-zero weight got a non-zero input), delayed like its output: Loihi's update rule."""
    n_out, lim = meta[k, SIZE], meta[k, LIM]
    n_in, delay = meta[k, A0], meta[k, A0 + 2]
    w0 = meta[k, PRM]
    bo = w0 + n_in * n_out
    s0 = bo + n_out
    x0 = meta[k, P0]
    dst = meta[k, OUT] if delay == 0 else -1
    eo = meta[k, EVO] if counters else -1
    uo = np.uint64(n_out)
    uh, ul, ur = np.uint64(s0), np.uint64(s0 + n_out), np.uint64(s0 + 2 * n_out)
    ns = 0
    for b in range(b0, b1):  # acc at tmp[:n_out], events at tmp[n_out:2n_out]
        for o in range(n_out):
            tmp[o] = prm[bo + o]
        if eo >= 0:
            for o in range(n_out):
                tmp[n_out + o] = 0
        for i in range(n_in):
            xi = buf[x0 + b * n_in + i]
            if xi == 0:
                continue
            row = np.uint64(w0 + i * n_out)  # unsigned: no wrap-around test per element, so the row loop vectorises
            if xi == 1:  # a spike: add the weight row (no products)
                for o in range(uo):
                    tmp[o] += prm[row + o]
            else:
                for o in range(uo):
                    tmp[o] += prm[row + o] * xi
            if eo >= 0:
                for o in range(n_out):
                    if prm[row + o] != 0:
                        tmp[n_out + o] = 1
        if eo >= 0:  # slot 0 holds the events consumers see this step; 1 .. delay the pipeline
            cur = eo + b * n_out
            if delay == 0:
                for o in range(n_out):
                    ev[cur + o] = tmp[n_out + o]
            else:
                slot = eo + (1 + t % delay) * B * n_out + b * n_out
                for o in range(n_out):
                    ev[cur + o] = ev[slot + o]
                    ev[slot + o] = tmp[n_out + o]
        for o in range(uo):  # rsh_round / rsh_floor as ((acc + half) << left) >> right, branch-free: vectorised
            v, c_ = _clip(((tmp[o] + prm[uh + o]) << prm[ul + o]) >> prm[ur + o], lim)
            ns += c_
            tmp[o] = v
        if delay == 0:
            for o in range(n_out):
                buf[dst + b * n_out + o] = tmp[o]
        else:  # pipe slot t % delay holds the value of step t - delay: emit it, then store this step's
            slot = meta[k, STO] + (t % delay) * B * n_out + b * n_out
            out = meta[k, OUT] + b * n_out
            for o in range(n_out):
                buf[out + o] = st[slot + o]
                st[slot + o] = tmp[o]
    return ns


@njit(cache=True)
def _neuron(k, op, B, b0, b1, meta, prm, buf, st, evm, has_ev):
    """QLIF, QRefractory and QLavaLIF: per-compartment state updates with their spike decisions."""
    n, x0, out0, s0, p = meta[k, SIZE], meta[k, P0], meta[k, OUT], meta[k, STO], meta[k, PRM]
    a0, a1, a2, a3, a4, a5 = meta[k, A0], meta[k, A0 + 1], meta[k, A0 + 2], meta[k, A0 + 3], meta[k, A0 + 4], \
        meta[k, A0 + 5]
    ns = 0
    act = 0
    hv, ge, sub, keep = bool(has_ev), a4 != 0, a3 == 1, a3 == 2
    un, up = np.uint64(n), np.uint64(p)
    for b in range(b0, b1):
        if op == LIF:  # a: decay, F, state lim, reset (0 zero, 1 subtract, 2 none), compare >=
            ux, uo, us = np.uint64(x0 + b * n), np.uint64(out0 + b * n), np.uint64(s0 + b * n)
            for c in range(un):  # branch-free over unsigned offsets (the flags are fixed per node): vectorised
                x, v_old, vth = buf[ux + c], st[us + c], prm[up + c]
                act += np.int64((x != 0) | (v_old != 0) | (hv & (evm[c] != 0)))
                v, c_ = _clip(_rtrunc(a0 * v_old, a1) + x, a2)
                ns += c_
                s = (ge & (v >= vth)) | ((not ge) & (v > vth))
                st[us + c] = (v - vth if sub else (v if keep else 0)) if s else v
                buf[uo + c] = np.int64(s)
            continue
        ux, uo = np.uint64(x0 + b * n), np.uint64(out0 + b * n)
        s1, s2, s3 = np.uint64(s0 + b * n), np.uint64(s0 + (B + b) * n), np.uint64(s0 + (2 * B + b) * n)
        if op == REFRACTORY:  # a: decay, lam, F, R, state lim; state v, s, r
            for c in range(un):
                x, vth, vo, so, ro = buf[ux + c], prm[up + c], st[s1 + c], st[s2 + c], st[s3 + c]
                act += np.int64((x != 0) | (vo != 0) | (so != 0) | (ro != 0) | (hv & (evm[c] != 0)))
                v, c1 = _clip(_rtrunc(a0 * vo, a2) + x - vth * so - _rround(prm[up + un + c] * ro, a3), a4)
                s = np.int64(v >= vth)
                r, c2 = _clip(_rtrunc(a1 * ro, a2) + (s << a3), a4)
                ns += c1 + c2
                st[s1 + c], st[s2 + c], st[s3 + c] = v, s, r
                buf[uo + c] = s
            continue
        half = np.int64(1) << (a1 - 1)  # LAVALIF; a: F, state bits, u factor, v factor, act_shift, vth_shift
        for c in range(un):
            x, vth, u_old, vo = buf[ux + c], prm[up + c], st[s1 + c], st[s2 + c]
            act += np.int64((x != 0) | (u_old != 0) | (vo != 0) | (hv & (evm[c] != 0)))
            u = _rtrunc(u_old * a2, a0) + (x << a4)
            u += 2 * half * (np.int64(u <= -half) - np.int64(u > half))  # wrap into (-half, half]
            v, c_ = _clip(_rtrunc(vo * a3, a0) + u + prm[up + un + c], half - 1)
            ns += c_
            s = v > (vth << a5)
            st[s1 + c] = u
            st[s2 + c] = 0 if s else v
            buf[uo + c] = np.int64(s)
    return ns, act


@njit(cache=True)
def _elementwise(k, op, B, b0, b1, meta, prm, buf, st, evm, has_ev):
    """QHeaviside, QLUT, QMul, QTernarize, QAdd, QAccumulate, QEmbedding, QLayerNorm."""
    n, lim, x0, out0, p = meta[k, SIZE], meta[k, LIM], meta[k, P0], meta[k, OUT], meta[k, PRM]
    a0, a1, a2, a3, a4 = meta[k, A0], meta[k, A0 + 1], meta[k, A0 + 2], meta[k, A0 + 3], meta[k, A0 + 4]
    lm = lim if lim >= 0 else np.int64(9223372036854775807)
    hv = bool(has_ev)
    un = np.uint64(n)
    ns = 0
    act = 0
    for b in range(b0, b1):
        xr = x0 + b * n
        orow = out0 + b * n
        if op == EMBEDDING:  # a: vocab
            tok = buf[x0 + b]
            if tok < 0:
                tok += a0
            for c in range(n):
                buf[orow + c] = prm[p + tok * n + c]
            continue
        if op == TERNARIZE:  # a: num, den (branch-free over unsigned offsets: vectorised)
            ux, uo = np.uint64(xr), np.uint64(orow)
            mx = np.int64(0)
            for c in range(un):
                mx = max(mx, abs(buf[ux + c]))
            for c in range(un):
                x = buf[ux + c]
                act += np.int64((x != 0) | (hv & (evm[c] != 0)))
                keep = (mx > 0) & (abs(x) * a1 >= a0 * mx)
                buf[uo + c] = (np.int64(x > 0) - np.int64(x < 0)) * np.int64(keep)
            continue
        if op == LAYERNORM:
            ns += _layernorm_row(xr, orow, n, lim, p, a0, a1, a2, a3, a4, prm, buf)
            for c in range(n):
                if buf[xr + c] != 0 or (has_ev and evm[c] != 0):
                    act += 1
            continue
        # one loop per op: a test of the op per element costs more than the element's update
        ux, uo = np.uint64(xr), np.uint64(orow)  # unsigned offsets, branch-free bodies: the loops vectorise
        if op == HEAVISIDE:  # a: compare >=
            up, ge = np.uint64(p), a0 != 0
            for c in range(un):
                x, vth = buf[ux + c], prm[up + c]
                act += np.int64((x != 0) | (hv & (evm[c] != 0)))
                buf[uo + c] = np.int64((ge & (x >= vth)) | ((not ge) & (x > vth)))
            continue
        if op == LUT:  # a: in_shift, offset, table length
            for c in range(un):  # the clipped indices and the counts (vectorised), into the output ...
                x = buf[ux + c]
                act += np.int64((x != 0) | (hv & (evm[c] != 0)))
                raw = _rround(x, a0) + a1
                idx = min(max(raw, 0), a2 - 1)
                ns += np.int64(idx != raw)
                buf[uo + c] = idx
            up = np.uint64(p)
            for c in range(un):  # ... then the look-ups alone (a gather, scalar): one loop was all scalar
                buf[uo + c] = prm[up + np.uint64(buf[uo + c])]
            continue
        if op == MUL:  # a: shift; second factor on port P1 (branch-free over unsigned offsets: vectorised)
            y0 = np.uint64(meta[k, P1] + b * n)
            for c in range(un):
                x, y = buf[ux + c], buf[y0 + c]
                act += np.int64((x != 0) | (y != 0) | (hv & (evm[c] != 0)))
                w = _rround(x * y, a0)
                v = min(max(w, -lm), lm)
                ns += np.int64(v != w)
                buf[uo + c] = v
            continue
        if op == ACCUMULATE:  # branch-free over unsigned offsets: vectorised
            ux, uo, us = np.uint64(xr), np.uint64(orow), np.uint64(meta[k, STO] + b * n)
            for c in range(un):
                x, acc = buf[ux + c], st[us + c]
                act += np.int64((x != 0) | (acc != 0) | (hv & (evm[c] != 0)))
                v, c_ = _clip(acc + x, lim)
                ns += c_
                st[us + c] = v
                buf[uo + c] = v
            continue
        for c in range(un):  # ADD (branch-free over unsigned offsets: vectorised)
            x = buf[ux + c]
            act += np.int64((x != 0) | (hv & (evm[c] != 0)))
            v = min(max(x, -lm), lm)
            ns += np.int64(v != x)
            buf[uo + c] = v
    return ns, act


@njit(cache=True)
def _layernorm_row(xr, orow, n, lim, p, a0, a1, a2, a3, a4, prm, buf):
    """One sample's QLayerNorm; a: mean_mul, mean_shift, var_shift, eps, index_bits. prm: w, bias, shift, T."""
    s = np.int64(0)
    for c in range(n):
        s += buf[xr + c]
    mean = _rround(s * a0, a1)
    ss = np.int64(0)
    for c in range(n):
        d = buf[xr + c] - mean
        ss += d * d
    v = _rround(ss * a0, a1 + a2) + a3
    v = max(v, 1)
    j = np.int64(0)
    for q in range(32):
        e = a4 + 2 * q
        if e >= 63:
            break
        if v >= (np.int64(1) << e):
            j += 1
    r = prm[p + 3 * n + _rround(v, 2 * j)]
    ns = 0
    for c in range(n):
        d = buf[xr + c] - mean
        y = _rround(d * r * prm[p + c], prm[p + 2 * n + c] + j) + prm[p + n + c]
        y, c_ = _clip(y, lim)
        ns += c_
        buf[orow + c] = y
    return ns


@njit(cache=True)
def _port_active(k, B, b0, b1, meta, buf):
    """A QDense relay: every output is active in a sample whose input vector is non-zero."""
    n_in, x0 = meta[k, A0], meta[k, P0]
    rows = 0
    for b in range(b0, b1):
        for i in range(n_in):
            if buf[x0 + b * n_in + i] != 0:
                rows += 1
                break
    return rows * meta[k, SIZE]


@njit(cache=True, nogil=True)  # nogil: batches run in parallel threads (simulate(threads=N))
def run_chunk(t0, T, B, ks, meta, gat, prm, buf, st, xin, seq, tmp, evm, nz, edge_nz, active, sat, spk, rec, ev,
              evs, evx, counters):
    """Steps t0 .. t0 + T - 1 of the nodes ``ks`` (rows of ``meta``, graph order). Rows with op INPUT read
    ``xin`` [B, T, size] at XIN: graph inputs and nodes computed before this call, replayed step by step.

    Samples are independent: a tile of TILE samples runs its whole chunk while its state is in cache (every
    kernel takes a range of samples). Integer sums do not depend on their order, so results and counters are those of any other order. The node
    update is written out in this loop, not in an inlined function: inlining copies every array argument, with a
    reference count update each, at every node and step."""
    for b0 in range(0, B, TILE):
        b1 = min(B, b0 + TILE)
        for tl in range(T):
            t = t0 + tl
            for k in ks:
                # node k, samples b0 .. b1 - 1, step t: gather its ports, update, count and record
                op = meta[k, OP]
                _gather(k, t, B, b0, b1, meta, gat, buf, edge_nz, counters)
                ns = 0
                act = 0
                n = meta[k, SIZE]
                if op == INPUT:  # (a replayed synapse-only dense's events are read where kept: evx)
                    for b in range(b0, b1):
                        out = np.uint64(meta[k, OUT] + b * n)
                        src = np.uint64(meta[k, XIN] + (b * T + tl) * n)
                        for j in range(np.uint64(n)):
                            buf[out + j] = xin[src + j]
                elif op == DENSE:
                    if counters and meta[k, ACTIVE]:
                        act = _port_active(k, B, b0, b1, meta, buf)
                    ns = _dense(k, t, B, b0, b1, meta, prm, buf, st, tmp, ev, counters)
                elif op == MODEBANK:
                    ns, act = _modebank(k, B, b0, b1, meta, prm, buf, st, tmp, nz, counters)
                elif op == READOUT:
                    ns, act = _readout(k, B, b0, b1, meta, prm, buf, st, tmp)
                else:
                    has_ev = counters and meta[k, ACTIVE] != 0 and meta[k, EV0] < meta[k, EV1]
                    un = np.uint64(n)
                    for b in range(b0, b1):
                        if has_ev:  # events from synapse-only dense layers reaching this node (OR over them)
                            for c in range(un):
                                evm[c] = 0
                            for q in range(meta[k, EV0], meta[k, EV1]):
                                if evx[q] >= 0:  # a source computed before this group: its kept events
                                    e = np.uint64(evx[q] + (b * T + tl) * n)
                                    for c in range(un):
                                        evm[c] |= xin[e + c]
                                    continue
                                e = np.uint64(evs[q] + b * n)  # unsigned: no wrap-around test, vectorised
                                for c in range(un):
                                    evm[c] |= ev[e + c]
                        if op == LIF or op == REFRACTORY or op == LAVALIF:
                            n_s, n_a = _neuron(k, op, B, b, b + 1, meta, prm, buf, st, evm, has_ev)
                        else:
                            n_s, n_a = _elementwise(k, op, B, b, b + 1, meta, prm, buf, st, evm, has_ev)
                        ns += n_s
                        act += n_a
                sat[meta[k, SAT]] += ns
                if counters and meta[k, ACTIVE]:
                    active[k] += act
                z = meta[k, NZO]
                si = meta[k, SPK]
                own = counters and op != MODEBANK  # the bank counts its non-zero outputs itself
                r = meta[k, REC]
                q = meta[k, SEQ]
                qe = meta[k, EVQ] if counters else -1
                un = np.uint64(n)
                for b in range(b0, b1):  # unsigned offsets: no wrap-around test per element, so the loops vectorise
                    out = np.uint64(meta[k, OUT] + b * n)
                    row = (b * T + tl) * n
                    if op != ACCUMULATE and z >= 0:
                        if own:
                            tot = 0
                            uz = np.uint64(z)
                            for i in range(un):
                                c = np.int64(buf[out + i] != 0)
                                nz[uz + i] += c
                                tot += c
                            if si >= 0:
                                spk[si, tl] += tot
                        elif si >= 0:
                            tot = 0
                            for i in range(un):
                                tot += np.int64(buf[out + i] != 0)
                            spk[si, tl] += tot
                    if r >= 0:  # rec: [B, T, n] of this chunk
                        w = np.uint64(r + row)
                        for i in range(un):
                            rec[w + i] = buf[out + i]
                    if q >= 0:  # the output sequence, read by later whole-chunk nodes or replayed in later calls
                        w = np.uint64(q + row)
                        for i in range(un):
                            seq[w + i] = buf[out + i]
                    if qe >= 0:
                        e = np.uint64(meta[k, EVO] + b * n)
                        w = np.uint64(qe + row)
                        for i in range(un):
                            seq[w + i] = ev[e + i]


refresh_stale_caches(globals(), ("compiled_ops.py", "compiled_ssm.py"))  # helpers inlined from these files
