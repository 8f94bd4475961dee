"""numba kernel of the state-width search's simulation (:func:`neurocompile.passes.ssmquant._simulate`).

The same integer arithmetic as sim/kernels.py's step_modebank + step_modereadout, for one QModeBank feeding only
its QModeReadout, fused into one loop per sample and channel (the NumPy form builds [B, T, H, M] temporaries for
every candidate width). Integer arithmetic wraps in both forms, so the order of the readout's sum does not matter.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _rsh_round(x, s):  # floor((x + 2^(s-1)) / 2^s); s <= 0 shifts left (sim.fixed.rsh_round)
    if s > 0:
        return (x + (np.int64(1) << (s - 1))) >> s
    return x << -s


@njit(cache=True, inline="always")
def _rsh_trunc(x, s):  # sign(x) (|x| >> s); s <= 0 shifts left (sim.fixed.rsh_trunc)
    if s <= 0:
        return x << -s
    if x < 0:
        return -((-x) >> s)
    return x >> s


@njit(cache=True, inline="always")
def _sat(x, lim):  # lim < 0: no saturation (bits <= 0)
    if lim < 0:
        return x
    return min(max(x, -lim), lim)


@njit(cache=True)
def scan(u, a_re, a_im, b_re, b_im, kb, f, lim_x, c_re, c_im, d, shift, lim_y):
    """Readout outputs y [B, T, H] (int64) of bank + readout for inputs ``u`` [B, T, H] (int64).

    Per sample b, channel h, mode m and step t (state starts at 0):
    re' = sat(rsh_trunc(a_re re - a_im im, f) + rsh_round(b_re u, kb_h)), im' likewise with a_im re + a_re im
    and b_im; y = sat(rsh_round(sum_m (c_re re' + c_im im') + d_h u, shift_h)). ``lim_x``, ``lim_y``: the
    saturation limits (-1: none).
    """
    n_b, n_t, n_h = u.shape
    n_m = a_re.shape[1]
    y = np.zeros((n_b, n_t, n_h), np.int64)
    re = np.zeros(n_m, np.int64)
    im = np.zeros(n_m, np.int64)
    for b in range(n_b):
        for h in range(n_h):
            re[:] = 0
            im[:] = 0
            k = kb[h]
            for t in range(n_t):
                x = u[b, t, h]
                acc = d[h] * x
                for m in range(n_m):
                    r = re[m]
                    i = im[m]
                    nr = _rsh_trunc(a_re[h, m] * r - a_im[h, m] * i, f) + _rsh_round(b_re[h, m] * x, k)
                    ni = _rsh_trunc(a_im[h, m] * r + a_re[h, m] * i, f) + _rsh_round(b_im[h, m] * x, k)
                    r = _sat(nr, lim_x)
                    i = _sat(ni, lim_x)
                    re[m] = r
                    im[m] = i
                    acc += c_re[h, m] * r + c_im[h, m] * i
                y[b, t, h] = _sat(_rsh_round(acc, shift[h]), lim_y)
    return y
