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


@njit(cache=True)
def _modebank(k, B, b0, b1, meta, prm, buf, st, tmp, nz, counters):
    """re, im <- sat(rsh_trunc(rotation, F) + rsh_round(b u, kb)); output (h*M + m)*2 + {re, im}; active modes.

    One branch-free loop over the H*M modes of a sample (so that it vectorises): u is first spread over the
    modes; rsh_trunc is ((x + ((x >> 63) & (2^F - 1))) >> F) << -F with the F <= 0 parts zero; rsh_round is
    ((x + half) << left) >> right with per-mode copies of the channel's shift (scalars when one shift serves every
    channel); saturation is min/max. With counters the non-zero outputs per index are counted here, re of every
    mode then im (the step loop skips the bank). A QModeReadout fused to the bank (A7 >= 0: its scratch offset,
    A8: its parameters) gets, per sample and channel, sum_m c_re re + c_im im and the OR of re | im of the new
    state. The interleaved output is written only when someone reads it (A9).
    """
    h_, m_, f = meta[k, A0], meta[k, A0 + 1], meta[k, A0 + 2]
    uni, uh, ul, ur = meta[k, A0 + 3], meta[k, A0 + 4], meta[k, A0 + 5], meta[k, A0 + 6]
    fused, rp, wout = meta[k, A0 + 7], meta[k, A0 + 8], meta[k, A0 + 9] != 0
    lim = meta[k, LIM]
    if lim < 0:
        lim = np.int64(9223372036854775807)
    hm = h_ * m_
    p = meta[k, PRM]
    are, aim, bre, bim = prm[p: p + hm], prm[p + hm: p + 2 * hm], prm[p + 2 * hm: p + 3 * hm], prm[p + 3 * hm: p + 4 * hm]
    q = p + 4 * hm
    half, left, right = prm[q: q + hm], prm[q + hm: q + 2 * hm], prm[q + 2 * hm: q + 3 * hm]
    if fused < 0:
        rp = p
    cre, cim = prm[rp: rp + hm], prm[rp + hm: rp + 2 * hm]
    z = meta[k, NZO] if counters else 0
    nzr, nzi = nz[z: z + hm], nz[z + hm: z + 2 * hm]
    re0 = meta[k, STO]
    im0 = re0 + B * hm
    x0, out0 = meta[k, P0], meta[k, OUT]
    tf = max(0, f)
    lf = -f if f < 0 else 0
    mask = (np.int64(1) << tf) - 1
    ue = tmp[:hm]
    um = np.uint64(m_)
    ns = 0
    act = 0
    for b in range(b0, b1):
        for h in range(h_):
            u = buf[x0 + b * h_ + h]
            j0 = np.uint64(h * m_)
            for m in range(um):
                ue[j0 + m] = u
        sre = st[re0 + b * hm: re0 + (b + 1) * hm]
        sim = st[im0 + b * hm: im0 + (b + 1) * hm]
        if uni:
            for j in range(hm):
                r, i, u = sre[j], sim[j], ue[j]
                act += (u | r | i) != 0
                sre[j], sim[j], n_s = _rotate(r, i, u, are[j], aim[j], bre[j], bim[j], mask, tf, lf, uh, ul, ur, lim)
                ns += n_s
        else:
            for j in range(hm):
                r, i, u = sre[j], sim[j], ue[j]
                act += (u | r | i) != 0
                sre[j], sim[j], n_s = _rotate(r, i, u, are[j], aim[j], bre[j], bim[j], mask, tf, lf, half[j],
                                              left[j], right[j], lim)
                ns += n_s
        if counters:  # non-zero counts, re of every mode then im (interleaved when read out)
            for j in range(hm):
                nzr[j] += np.int64(sre[j] != 0)
            for j in range(hm):
                nzi[j] += np.int64(sim[j] != 0)
        if wout:
            o = buf[out0 + b * 2 * hm: out0 + (b + 1) * 2 * hm]
            for j in range(hm):
                o[2 * j] = sre[j]
                o[2 * j + 1] = sim[j]
        if fused >= 0:  # the readout's sums per channel (unsigned indices: no wrap-around test, vectorised)
            for h in range(h_):
                j0 = np.uint64(h * m_)
                acc = np.int64(0)
                nzs = np.int64(0)
                for m in range(um):
                    r, i = sre[j0 + m], sim[j0 + m]
                    acc += cre[j0 + m] * r + cim[j0 + m] * i
                    nzs |= r | i
                st[fused + b * h_ + h] = acc
                st[fused + (B + b) * h_ + h] = nzs
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
