"""numba kernels of the compiled step for the state-space pair: QModeBank and QModeReadout (docs/semantics.md),
on the flat int64 arenas of :mod:`neurocompile.sim.compiled_kernels`."""

from __future__ import annotations

import numpy as np
from numba import njit

from neurocompile.sim.compiled_ops import A0, LIM, NZO, OUT, P0, P1, PRM, STO, _clip, refresh_stale_caches


@njit(cache=True, inline="always")
def _rotate(r, i, u, ar, ai, br, bi, mask, tf, lf, half, left, right, lim):
    """One mode: new (re, im) = sat(rsh_trunc(a (r + i j), F) + rsh_round(b u, kb)) and the values clipped;
    rsh_trunc as ((x + ((x >> 63) & (2^F - 1))) >> F) << -F (the F <= 0 parts zero), rsh_round as
    ((x + half) << left) >> right, saturation as min/max (branch-free: the loops calling it vectorise)."""
    xr = ar * r - ai * i
    xi = ai * r + ar * i
    nr = (((xr + ((xr >> 63) & mask)) >> tf) << lf) + (((br * u + half) << left) >> right)
    ni = (((xi + ((xi >> 63) & mask)) >> tf) << lf) + (((bi * u + half) << left) >> right)
    cr = min(max(nr, -lim), lim)
    ci = min(max(ni, -lim), lim)
    return cr, ci, np.int64(cr != nr) + np.int64(ci != ni)


@njit(cache=True, inline="always")
def _settle(h, cr, ci, sre, sim, acc, orr, cre, cim):
    """Channel h's new (re, im) of one mode: stored, and c_re re + c_im im added to the fused readout's sum
    (re | im to its OR); returns min(|re|, |im|) (0: a zero to count)."""
    sre[h] = cr
    sim[h] = ci
    acc[h] += cre[h] * cr + cim[h] * ci
    orr[h] |= cr | ci
    return min(abs(cr), abs(ci))


@njit(cache=True, inline="always")
def _count_zeros(sre, sim, zr, zi, n):
    """Zero re and im per index of one mode (the rare case: a state of exactly 0)."""
    for h in range(n):
        zr[h] += np.int64(sre[h] == 0)
        zi[h] += np.int64(sim[h] == 0)


@njit(cache=True)
def _modebank(k, B, b0, b1, meta, prm, buf, st, tmp, nz, counters):
    """re, im <- sat(rsh_trunc(rotation, F) + rsh_round(b u, kb)); output (h*M + m)*2 + {re, im}; active modes.

    States, parameters and counters are mode-major (index m*H + h; parameters and counters padded to the stride
    A10, compiled_nodes.mode_stride), so that one branch-free loop per mode runs over the H channels (vectorised,
    u read as it is): it rotates, notes the least |re|, |im| of the new state, and for a QModeReadout fused to
    the bank (A7 >= 0: its scratch offset, A8: its mode-major c_re, c_im) adds c_re re + c_im im and ORs re | im
    per channel; after the last mode those sums go to the scratch. With counters on, the ZERO re and im are
    counted per index (Layout.counts gives rows counted - zeros), in a second pass over the mode only when its
    least value was 0: a state is rarely exactly 0, and a count per index and step cost 10 of the loop's 66
    vector instructions (8 % of the step loop's time measured).
    rsh_trunc is ((x + ((x >> 63) & (2^F - 1))) >> F) << -F with the F <= 0 parts zero; rsh_round is
    ((x + half) << left) >> right with per-mode copies of the channel's shift (scalars when one shift serves every
    channel); saturation is min/max. The interleaved output is written only when someone reads it (A9).
    """
    h_, m_, f = meta[k, A0], meta[k, A0 + 1], meta[k, A0 + 2]
    uni, uh, ul, ur = meta[k, A0 + 3], meta[k, A0 + 4], meta[k, A0 + 5], meta[k, A0 + 6]
    fused, rp, wout, s_ = meta[k, A0 + 7], meta[k, A0 + 8], meta[k, A0 + 9] != 0, meta[k, A0 + 10]
    lim = meta[k, LIM]
    if lim < 0:
        lim = np.int64(9223372036854775807)
    hm = h_ * m_
    p = meta[k, PRM]
    if fused < 0:  # no readout: the sums are formed from the bank's own a (unused)
        rp = p
    z = meta[k, NZO]
    re0 = meta[k, STO]
    im0 = re0 + B * hm
    x0, out0 = meta[k, P0], meta[k, OUT]
    tf = max(0, f)
    lf = -f if f < 0 else 0
    mask = (np.int64(1) << tf) - 1
    uH = np.uint64(h_)
    acc, orr = tmp[:h_], tmp[h_: 2 * h_]
    ns = 0
    act = 0
    for b in range(b0, b1):
        ub = buf[x0 + b * h_: x0 + (b + 1) * h_]
        for h in range(uH):
            acc[h] = 0
            orr[h] = 0
        for m in range(m_):
            j0 = m * h_
            sre = st[re0 + b * hm + j0: re0 + b * hm + j0 + h_]
            sim = st[im0 + b * hm + j0: im0 + b * hm + j0 + h_]
            are, aim = prm[p + j0: p + j0 + h_], prm[p + s_ + j0: p + s_ + j0 + h_]
            bre, bim = prm[p + 2 * s_ + j0: p + 2 * s_ + j0 + h_], prm[p + 3 * s_ + j0: p + 3 * s_ + j0 + h_]
            cre, cim = prm[rp + j0: rp + j0 + h_], prm[rp + s_ + j0: rp + s_ + j0 + h_]
            zm = np.int64(1)
            if uni:
                for h in range(uH):
                    r, i, u = sre[h], sim[h], ub[h]
                    act += (u | r | i) != 0
                    cr, ci, n_s = _rotate(r, i, u, are[h], aim[h], bre[h], bim[h], mask, tf, lf, uh, ul, ur, lim)
                    ns += n_s
                    zm = min(zm, _settle(h, cr, ci, sre, sim, acc, orr, cre, cim))
            else:
                q = p + 4 * s_ + j0
                half, left, right = prm[q: q + h_], prm[q + s_: q + s_ + h_], prm[q + 2 * s_: q + 2 * s_ + h_]
                for h in range(uH):
                    r, i, u = sre[h], sim[h], ub[h]
                    act += (u | r | i) != 0
                    cr, ci, n_s = _rotate(r, i, u, are[h], aim[h], bre[h], bim[h], mask, tf, lf, half[h], left[h],
                                          right[h], lim)
                    ns += n_s
                    zm = min(zm, _settle(h, cr, ci, sre, sim, acc, orr, cre, cim))
            if zm == 0 and counters:
                _count_zeros(sre, sim, nz[z + j0: z + j0 + h_], nz[z + s_ + j0: z + s_ + j0 + h_], uH)
        if fused >= 0:
            fa, fo = st[fused + b * h_: fused + (b + 1) * h_], st[fused + (B + b) * h_: fused + (B + b + 1) * h_]
            for h in range(uH):
                fa[h] = acc[h]
                fo[h] = orr[h]
        if wout:  # interleaved, channel-major: (h*M + m)*2 + {re, im}
            o = buf[out0 + b * 2 * hm: out0 + (b + 1) * 2 * hm]
            for m in range(m_):
                sre = st[re0 + b * hm + m * h_: re0 + b * hm + (m + 1) * h_]
                sim = st[im0 + b * hm + m * h_: im0 + b * hm + (m + 1) * h_]
                for h in range(h_):
                    o[2 * (h * m_ + m)] = sre[h]
                    o[2 * (h * m_ + m) + 1] = sim[h]
    return ns, 2 * act


@njit(cache=True)
def _readout(k, B, b0, b1, meta, prm, buf, st, tmp):
    """acc_h = sum_m c_re re + c_im im + d u; sat(rsh_round(acc, shift_h)) as ((acc + half) << left) >> right;
    active channels. Parameters: c_re, c_im [H*M], d [H], and per channel the shift's parts half, left, right.

    Fused to its QModeBank (A2 >= 0: the scratch where the bank left sum_m c_re re + c_im im and the OR of the
    modes per channel), only d u, the rounding and the saturation remain; otherwise the products read the
    interleaved output at port 'state' and are summed (and ORed) per channel in scratch. Either way one
    branch-free loop over the channels finishes them (vectorised).
    """
    h_, m_, lim, fz = meta[k, A0], meta[k, A0 + 1], meta[k, LIM], meta[k, A0 + 2]
    hm = h_ * m_
    p = meta[k, PRM]
    cre, cim = prm[p: p + hm], prm[p + hm: p + 2 * hm]
    ud = np.uint64(p + 2 * hm)
    uh, ul, ur = ud + np.uint64(h_), ud + np.uint64(2 * h_), ud + np.uint64(3 * h_)
    s0, k0, out0 = meta[k, P0], meta[k, P1], meta[k, OUT]
    pr = tmp[:hm]
    nzf = tmp[hm: 2 * hm]
    uH = np.uint64(h_)
    sums = st if fz >= 0 else tmp  # where the per-channel sums and ORs are: the bank's scratch or ours
    ns = 0
    act = 0
    for b in range(b0, b1):
        if fz >= 0:
            ua, uz = np.uint64(fz + b * h_), np.uint64(fz + (B + b) * h_)
        else:
            sv = buf[s0 + b * 2 * hm: s0 + (b + 1) * 2 * hm]
            for j in range(hm):
                pr[j] = cre[j] * sv[2 * j] + cim[j] * sv[2 * j + 1]
                nzf[j] = sv[2 * j] | sv[2 * j + 1]
            for h in range(h_):  # in place, channels in order: channel h's sum lands at or before its modes
                acc = np.int64(0)
                nzs = np.int64(0)
                for m in range(h * m_, (h + 1) * m_):
                    acc += pr[m]
                    nzs |= nzf[m]
                pr[h] = acc
                nzf[h] = nzs
            ua, uz = np.uint64(0), np.uint64(hm)
        uu, uo = np.uint64(k0 + b * h_), np.uint64(out0 + b * h_)
        for h in range(uH):
            u = buf[uu + h]
            act += np.int64((u | sums[uz + h]) != 0)
            v, c_ = _clip(((prm[ud + h] * u + sums[ua + h] + prm[uh + h]) << prm[ul + h]) >> prm[ur + h], lim)
            ns += c_
            buf[uo + h] = v
    return ns, act


refresh_stale_caches(globals(), ("compiled_ops.py",))  # helpers inlined from these files
