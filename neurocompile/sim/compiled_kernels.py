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

# node op codes
INPUT, EMBEDDING, DENSE, MODEBANK, READOUT, LIF, HEAVISIDE, REFRACTORY, LUT, MUL, TERNARIZE, ADD, ACCUMULATE, \
    LAVALIF, LAYERNORM = range(15)

# columns of ``meta`` (one row per node run every step)
OP, SIZE, OUT, LIM, P0, P1, STO, PRM, NZO, ACTIVE, SPK, REC, XIN, G0, G1, SAT, A0 = range(17)
NA = 9  # op-specific scalars A0 .. A0 + NA - 1
NMETA = A0 + NA

# columns of ``gat`` (one row per (port, source) that is summed or delayed)
G_DST, G_SRC, G_SIZE, G_DELAY, G_RING, G_ENZ, G_FIRST = range(7)
NGAT = 7


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


@njit(cache=True)
def _gather(k, t, B, meta, gat, buf, edge_nz, counters):
    """Sum the sources of node k's ports into their port buffers (delayed edges through their rings)."""
    for g in range(meta[k, G0], meta[k, G1]):
        dst, src, n, d = gat[g, G_DST], gat[g, G_SRC], gat[g, G_SIZE], gat[g, G_DELAY]
        m = B * n
        if d > 0:
            ring = gat[g, G_RING]
            w = ring + (t % (d + 1)) * m
            for j in range(m):
                buf[w + j] = buf[src + j]
            src = ring + ((t + 1) % (d + 1)) * m  # slot of step t - d
            if counters:
                e = gat[g, G_ENZ]
                for b in range(B):
                    for i in range(n):
                        if buf[src + b * n + i] != 0:
                            edge_nz[e + i] += 1
        if gat[g, G_FIRST]:
            for j in range(m):
                buf[dst + j] = buf[src + j]
        else:
            for j in range(m):
                buf[dst + j] += buf[src + j]


@njit(cache=True)
def _dense(k, t, B, meta, prm, buf, st, tmp):
    """acc = W x + bias (zero inputs skipped: exact), rsh_round/rsh_floor per output, sat; optional pipeline."""
    n_out, lim = meta[k, SIZE], meta[k, LIM]
    n_in, floor, delay = meta[k, A0], meta[k, A0 + 1], meta[k, A0 + 2]
    w0 = meta[k, PRM]
    b0 = w0 + n_in * n_out
    s0 = b0 + n_out
    x0 = meta[k, P0]
    dst = meta[k, OUT] if delay == 0 else -1
    ns = 0
    for b in range(B):
        acc = tmp[:n_out]
        for o in range(n_out):
            acc[o] = prm[b0 + o]
        for i in range(n_in):
            xi = buf[x0 + b * n_in + i]
            if xi != 0:
                row = prm[w0 + i * n_out: w0 + (i + 1) * n_out]
                for o in range(n_out):
                    acc[o] += row[o] * xi
        for o in range(n_out):
            s = prm[s0 + o]
            v = _rfloor(acc[o], s) if floor else _rround(acc[o], s)
            if lim >= 0:
                if v > lim:
                    v = lim
                    ns += 1
                elif v < -lim:
                    v = -lim
                    ns += 1
            acc[o] = v
        if delay == 0:
            for o in range(n_out):
                buf[dst + b * n_out + o] = acc[o]
        else:  # pipe slot t % delay holds the value of step t - delay: emit it, then store this step's
            slot = meta[k, STO] + (t % delay) * B * n_out + b * n_out
            out = meta[k, OUT] + b * n_out
            for o in range(n_out):
                buf[out + o] = st[slot + o]
                st[slot + o] = acc[o]
    return ns


@njit(cache=True)
def _modebank(k, B, meta, prm, buf, st):
    """re, im <- sat(rsh_trunc(rotation, F) + rsh_round(b u, kb)); output (h*M + m)*2 + {re, im}; active modes."""
    h_, m_, f = meta[k, A0], meta[k, A0 + 1], meta[k, A0 + 2]
    lim = meta[k, LIM]
    hm = h_ * m_
    p = meta[k, PRM]
    are, aim, bre, bim, kbo = p, p + hm, p + 2 * hm, p + 3 * hm, p + 4 * hm
    re0 = meta[k, STO]
    im0 = re0 + B * hm
    x0, out0 = meta[k, P0], meta[k, OUT]
    ns = 0
    act = 0
    for b in range(B):
        for h in range(h_):
            u = buf[x0 + b * h_ + h]
            kb = prm[kbo + h]
            for m in range(m_):
                j = h * m_ + m
                si = b * hm + j
                r, i = st[re0 + si], st[im0 + si]
                if u != 0 or r != 0 or i != 0:
                    act += 2
                ar, ai = prm[are + j], prm[aim + j]
                nr = _rtrunc(ar * r - ai * i, f) + _rround(prm[bre + j] * u, kb)
                ni = _rtrunc(ai * r + ar * i, f) + _rround(prm[bim + j] * u, kb)
                if lim >= 0:
                    if nr > lim:
                        nr = lim
                        ns += 1
                    elif nr < -lim:
                        nr = -lim
                        ns += 1
                    if ni > lim:
                        ni = lim
                        ns += 1
                    elif ni < -lim:
                        ni = -lim
                        ns += 1
                st[re0 + si] = nr
                st[im0 + si] = ni
                o = out0 + b * 2 * hm + 2 * j
                buf[o] = nr
                buf[o + 1] = ni
    return ns, act


@njit(cache=True)
def _readout(k, B, meta, prm, buf):
    """acc_h = sum_m c_re re + c_im im + d u; sat(rsh_round(acc, shift_h)); active channels."""
    h_, m_, lim = meta[k, A0], meta[k, A0 + 1], meta[k, LIM]
    hm = h_ * m_
    p = meta[k, PRM]
    cre, cim, dd, sh = p, p + hm, p + 2 * hm, p + 2 * hm + h_
    s0, k0, out0 = meta[k, P0], meta[k, P1], meta[k, OUT]
    ns = 0
    act = 0
    for b in range(B):
        for h in range(h_):
            u = buf[k0 + b * h_ + h]
            acc = prm[dd + h] * u
            nzs = u != 0
            for m in range(m_):
                o = s0 + b * 2 * hm + 2 * (h * m_ + m)
                r, i = buf[o], buf[o + 1]
                if r != 0 or i != 0:
                    nzs = True
                acc += prm[cre + h * m_ + m] * r + prm[cim + h * m_ + m] * i
            if nzs:
                act += 1
            v = _rround(acc, prm[sh + h])
            if lim >= 0:
                if v > lim:
                    v = lim
                    ns += 1
                elif v < -lim:
                    v = -lim
                    ns += 1
            buf[out0 + b * h_ + h] = v
    return ns, act


@njit(cache=True)
def _neuron(k, op, B, meta, prm, buf, st):
    """QLIF, QRefractory and QLavaLIF: per-compartment state updates with their spike decisions."""
    n, x0, out0, s0, p = meta[k, SIZE], meta[k, P0], meta[k, OUT], meta[k, STO], meta[k, PRM]
    a = meta[k, A0: A0 + NA]
    ns = 0
    act = 0
    for b in range(B):
        for c in range(n):
            j = b * n + c
            x = buf[x0 + j]
            vth = prm[p + c]
            if op == LIF:  # a: decay, F, state lim, subtract, compare >=
                v_old = st[s0 + j]
                if x != 0 or v_old != 0:
                    act += 1
                v = _rtrunc(a[0] * v_old, a[1]) + x
                if a[2] >= 0:
                    if v > a[2]:
                        v = a[2]
                        ns += 1
                    elif v < -a[2]:
                        v = -a[2]
                        ns += 1
                s = (v >= vth) if a[4] else (v > vth)
                if s:
                    v = v - vth if a[3] else 0
                st[s0 + j] = v
                buf[out0 + j] = 1 if s else 0
            elif op == REFRACTORY:  # a: decay, lam, F, R, state lim
                vo, so, ro = st[s0 + j], st[s0 + B * n + j], st[s0 + 2 * B * n + j]
                if x != 0 or vo != 0 or so != 0 or ro != 0:
                    act += 1
                v = _rtrunc(a[0] * vo, a[2]) + x - vth * so - _rround(prm[p + n + c] * ro, a[3])
                if a[4] >= 0:
                    if v > a[4]:
                        v = a[4]
                        ns += 1
                    elif v < -a[4]:
                        v = -a[4]
                        ns += 1
                s = np.int64(1) if v >= vth else np.int64(0)
                r = _rtrunc(a[1] * ro, a[2]) + (s << a[3])
                if a[4] >= 0:
                    if r > a[4]:
                        r = a[4]
                        ns += 1
                    elif r < -a[4]:
                        r = -a[4]
                        ns += 1
                st[s0 + j], st[s0 + B * n + j], st[s0 + 2 * B * n + j] = v, s, r
                buf[out0 + j] = s
            else:  # LAVALIF; a: F, state bits, u factor, v factor, act_shift, vth_shift
                uo, vo = st[s0 + j], st[s0 + B * n + j]
                if x != 0 or uo != 0 or vo != 0:
                    act += 1
                half = np.int64(1) << (a[1] - 1)
                u = _rtrunc(uo * a[2], a[0]) + (x << a[4])
                if u > half:
                    u -= 2 * half
                elif u <= -half:
                    u += 2 * half
                v = _rtrunc(vo * a[3], a[0]) + u + prm[p + n + c]
                if v > half - 1:
                    v = half - 1
                    ns += 1
                elif v < 1 - half:
                    v = 1 - half
                    ns += 1
                s = v > (vth << a[5])
                st[s0 + j] = u
                st[s0 + B * n + j] = 0 if s else v
                buf[out0 + j] = 1 if s else 0
    return ns, act


@njit(cache=True)
def _elementwise(k, op, B, meta, prm, buf, st):
    """QHeaviside, QLUT, QMul, QTernarize, QAdd, QAccumulate, QEmbedding, QLayerNorm."""
    n, lim, x0, out0, p = meta[k, SIZE], meta[k, LIM], meta[k, P0], meta[k, OUT], meta[k, PRM]
    a = meta[k, A0: A0 + NA]
    ns = 0
    act = 0
    for b in range(B):
        xr = x0 + b * n
        orow = out0 + b * n
        if op == EMBEDDING:  # a: vocab
            tok = buf[x0 + b]
            if tok < 0:
                tok += a[0]
            for c in range(n):
                buf[orow + c] = prm[p + tok * n + c]
            continue
        if op == TERNARIZE:  # a: num, den
            mx = np.int64(0)
            for c in range(n):
                mx = max(mx, abs(buf[xr + c]))
            for c in range(n):
                x = buf[xr + c]
                if x != 0:
                    act += 1
                keep = mx > 0 and abs(x) * a[1] >= a[0] * mx
                buf[orow + c] = (1 if x > 0 else -1) if keep and x != 0 else 0
            continue
        if op == LAYERNORM:
            ns += _layernorm_row(xr, orow, n, lim, p, a, prm, buf)
            for c in range(n):
                if buf[xr + c] != 0:
                    act += 1
            continue
        for c in range(n):
            j = b * n + c
            x = buf[xr + c]
            if op == HEAVISIDE:  # a: compare >=
                if x != 0:
                    act += 1
                vth = prm[p + c]
                buf[orow + c] = 1 if ((x >= vth) if a[0] else (x > vth)) else 0
                continue
            if op == LUT:  # a: in_shift, offset, table length
                if x != 0:
                    act += 1
                idx = _rround(x, a[0]) + a[1]
                if idx < 0:
                    idx = 0
                    ns += 1
                elif idx >= a[2]:
                    idx = a[2] - 1
                    ns += 1
                buf[orow + c] = prm[p + idx]
                continue
            if op == MUL:  # a: shift; second factor on port P1
                y = buf[meta[k, P1] + j]
                if x != 0 or y != 0:
                    act += 1
                v = _rround(x * y, a[0])
            elif op == ACCUMULATE:
                acc = st[meta[k, STO] + j]
                if x != 0 or acc != 0:
                    act += 1
                v = acc + x
            else:  # ADD
                if x != 0:
                    act += 1
                v = x
            if lim >= 0:
                if v > lim:
                    v = lim
                    ns += 1
                elif v < -lim:
                    v = -lim
                    ns += 1
            if op == ACCUMULATE:
                st[meta[k, STO] + j] = v
            buf[orow + c] = v
    return ns, act


@njit(cache=True)
def _layernorm_row(xr, orow, n, lim, p, a, prm, buf):
    """One sample's QLayerNorm; a: mean_mul, mean_shift, var_shift, eps, index_bits. prm: w, bias, shift, T."""
    s = np.int64(0)
    for c in range(n):
        s += buf[xr + c]
    mean = _rround(s * a[0], a[1])
    ss = np.int64(0)
    for c in range(n):
        d = buf[xr + c] - mean
        ss += d * d
    v = _rround(ss * a[0], a[1] + a[2]) + a[3]
    if v < 1:
        v = 1
    j = np.int64(0)
    for q in range(32):
        e = a[4] + 2 * q
        if e >= 63:
            break
        if v >= (np.int64(1) << e):
            j += 1
    r = prm[p + 3 * n + _rround(v, 2 * j)]
    ns = 0
    for c in range(n):
        d = buf[xr + c] - mean
        y = _rround(d * r * prm[p + c], prm[p + 2 * n + c] + j) + prm[p + n + c]
        if lim >= 0:
            if y > lim:
                y = lim
                ns += 1
            elif y < -lim:
                y = -lim
                ns += 1
        buf[orow + c] = y
    return ns


@njit(cache=True)
def _port_active(k, B, meta, buf):
    """A QDense relay: every output is active in a sample whose input vector is non-zero."""
    n_in, x0 = meta[k, A0], meta[k, P0]
    rows = 0
    for b in range(B):
        for i in range(n_in):
            if buf[x0 + b * n_in + i] != 0:
                rows += 1
                break
    return rows * meta[k, SIZE]


@njit(cache=True)
def run_chunk(t0, T, B, meta, gat, prm, buf, st, xin, tmp, nz, edge_nz, active, sat, spk, rec, counters):
    """Steps t0 .. t0 + T - 1 of the whole graph. Inputs ``xin`` are [T, B, size] per input node (quantised)."""
    nodes = meta.shape[0]
    for tl in range(T):
        t = t0 + tl
        for k in range(nodes):
            op = meta[k, OP]
            _gather(k, t, B, meta, gat, buf, edge_nz, counters)
            ns = 0
            act = 0
            if op == INPUT:
                n = meta[k, SIZE]
                src = meta[k, XIN] + tl * B * n
                for j in range(B * n):
                    buf[meta[k, OUT] + j] = xin[src + j]
            elif op == DENSE:
                if counters and meta[k, ACTIVE]:
                    act = _port_active(k, B, meta, buf)
                ns = _dense(k, t, B, meta, prm, buf, st, tmp)
            elif op == MODEBANK:
                ns, act = _modebank(k, B, meta, prm, buf, st)
            elif op == READOUT:
                ns, act = _readout(k, B, meta, prm, buf)
            elif op == LIF or op == REFRACTORY or op == LAVALIF:
                ns, act = _neuron(k, op, B, meta, prm, buf, st)
            else:
                ns, act = _elementwise(k, op, B, meta, prm, buf, st)
            sat[meta[k, SAT]] += ns
            if counters and meta[k, ACTIVE]:
                active[k] += act
            n = meta[k, SIZE]
            out = meta[k, OUT]
            if op != ACCUMULATE:
                si = meta[k, SPK]
                if counters or si >= 0:
                    z = meta[k, NZO]
                    tot = 0
                    for b in range(B):
                        for i in range(n):
                            if buf[out + b * n + i] != 0:
                                tot += 1
                                if counters:
                                    nz[z + i] += 1
                    if si >= 0:
                        spk[si, tl] += tot
            r = meta[k, REC]
            if r >= 0:  # rec: [B, T, n] of this chunk
                for b in range(B):
                    for i in range(n):
                        rec[r + (b * T + tl) * n + i] = buf[out + b * n + i]
