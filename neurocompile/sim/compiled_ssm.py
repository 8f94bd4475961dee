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
def _mode(st, prm, buf, tmp, o_re, o_im, o_u, o_a, o_b, o_c, o_k, s_, mask, tf, lf, uh, ul, ur, lim, n, uni, full):
    """One mode over the H channels (one vectorised loop): rotate, store, add c_re re + c_im im to the fused
    readout's sum (tmp[:H]). Unsigned word offsets (not slices: a slice costs a reference count update on
    creation and release, 22 per mode and step): re at ``o_re`` and im at ``o_im`` of ``st``, u at ``o_u`` of
    ``buf``; a_re, a_im at ``o_a``, ``o_a + s_``; b_re, b_im at ``o_b``...; c_re, c_im at ``o_c``...; the
    shift's half, left, right at ``o_k``... of ``prm``. ``uni``: one shift (uh, ul, ur) for every channel.
    ``full``: also count the active channels ((u | re | im) != 0 before the update) and OR re | im into
    tmp[H:2H]; without it every channel is active (the caller knows no state of the mode was 0). Returns
    (saturations, active, min |re|, |im| of the new state: 0 when a zero is to be counted). ``uni`` and ``full``
    are constants at each call, so each loop is compiled without the parts it does not do."""
    ns = 0
    act = 0
    zm = np.int64(1)
    for h in range(n):
        r, i, u = st[o_re + h], st[o_im + h], buf[o_u + h]
        ar, ai, br, bi = prm[o_a + h], prm[o_a + s_ + h], prm[o_b + h], prm[o_b + s_ + h]
        if full:
            act += (u | r | i) != 0
        if uni:
            cr, ci, n_s = _rotate(r, i, u, ar, ai, br, bi, mask, tf, lf, uh, ul, ur, lim)
        else:
            cr, ci, n_s = _rotate(r, i, u, ar, ai, br, bi, mask, tf, lf, prm[o_k + h], prm[o_k + s_ + h],
                                  prm[o_k + 2 * s_ + h], lim)
        ns += n_s
        st[o_re + h] = cr
        st[o_im + h] = ci
        tmp[h] += prm[o_c + h] * cr + prm[o_c + s_ + h] * ci
        if full:
            tmp[n + h] |= cr | ci
        zm = min(zm, min(abs(cr), abs(ci)))
    return ns, act, zm


@njit(cache=True, inline="always")
def _zeros(st, nz, tmp, o_re, o_im, o_z, s_, n, counters, full):
    """The rare pass over a mode whose new state has a 0: zero re and im counted per index (at ``o_z`` and
    ``o_z + s_`` of ``nz``, counters on), and re | im ORed into tmp[H:2H] where the loop did not."""
    for h in range(n):
        if counters:
            nz[o_z + h] += np.int64(st[o_re + h] == 0)
            nz[o_z + s_ + h] += np.int64(st[o_im + h] == 0)
        if not full:
            tmp[n + h] |= st[o_re + h] | st[o_im + h]


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
    zf0 = meta[k, A0 + 11]
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
        o_u = np.uint64(x0 + b * h_)
        zf = st[zf0 + b * m_: zf0 + (b + 1) * m_]  # per mode: its state had a 0 after the last step (1: unknown)
        for h in range(uH):
            acc[h] = 0
            orr[h] = 0
        some = False  # a mode without a zero state: then every channel's OR of its modes is non-zero
        for m in range(m_):
            j0 = m * h_
            o_re, o_im = np.uint64(re0 + b * hm + j0), np.uint64(im0 + b * hm + j0)
            o_a, o_b, o_c = np.uint64(p + j0), np.uint64(p + 2 * s_ + j0), np.uint64(rp + j0)
            o_k, u_ = np.uint64(p + 4 * s_ + j0), np.uint64(s_)
            full = zf[m] != 0
            if uni and not full and lf == 0 and ul == 0:  # the usual case: no state was 0 (every channel active,
                # no OR needed), right shifts only (constant 0 left shifts: four vector shifts fewer per 8 channels)
                n_s, a_, zm = _mode(st, prm, buf, tmp, o_re, o_im, o_u, o_a, o_b, o_c, o_k, u_, mask, tf, 0, uh, 0,
                                    ur, lim, uH, True, False)
                a_ = h_
            elif uni and not full:
                n_s, a_, zm = _mode(st, prm, buf, tmp, o_re, o_im, o_u, o_a, o_b, o_c, o_k, u_, mask, tf, lf, uh, ul,
                                    ur, lim, uH, True, False)
                a_ = h_
            elif uni:
                n_s, a_, zm = _mode(st, prm, buf, tmp, o_re, o_im, o_u, o_a, o_b, o_c, o_k, u_, mask, tf, lf, uh, ul,
                                    ur, lim, uH, True, True)
            elif not full:
                n_s, a_, zm = _mode(st, prm, buf, tmp, o_re, o_im, o_u, o_a, o_b, o_c, o_k, u_, mask, tf, lf, uh, ul,
                                    ur, lim, uH, False, False)
                a_ = h_
            else:
                n_s, a_, zm = _mode(st, prm, buf, tmp, o_re, o_im, o_u, o_a, o_b, o_c, o_k, u_, mask, tf, lf, uh, ul,
                                    ur, lim, uH, False, True)
            ns += n_s
            act += a_
            if zm == 0:
                _zeros(st, nz, tmp, o_re, o_im, np.uint64(z + j0), u_, uH, counters, full)
            else:
                some = True
            zf[m] = np.int64(zm == 0)
        if some:
            for h in range(uH):
                orr[h] = 1
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
