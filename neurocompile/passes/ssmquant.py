"""Quantisation of one SSM layer (ModeBank + its ModeReadout), used by the quantize pass.

Mode basis: the integer state of mode (h, m) is h_int = h / beta_hm (beta complex, real units per integer unit),
chosen so that the input coefficient b = b' 2^-k_h is a real integer b' in [1, wmax] (no quantisation error) and
the mode's calibrated peak |h| maps to 3/4 of the state limit. Because dA is diagonal this is an exact change
of basis; the readout absorbs it (c = 2 C beta). The basis is recorded in the node's quantisation record
(``mode_basis``) so that reports can map integer states back to float ones.

The state width is searched: for each candidate width b_x the pair is quantised, simulated on the calibration
input with the integer kernels, and scored by the SQNR of the readout output against the float trace. The
trade-off being searched:
a finer state (more bits) lowers the recurrence's rounding error, but the readout's worst-case accumulator
sum_m (|c_re| + |c_im|) * state_limit + |d| * u_limit must fit ``accumulator_bits``, so more state bits leave
fewer bits to the readout weights c.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from neurocompile.errors import QuantizationError
from neurocompile.fixedpoint import round_half_away
from neurocompile.ir import hw
from neurocompile.ir import nodes as fl
from neurocompile.passes import qmath
from neurocompile.passes.common import limit
from neurocompile.sim.fixed import rsh_round, rsh_trunc, sat

_BUDGET = 2e7  # samples x H x M x T simulated per candidate width
_MAX_SAMPLES = 64
_SEARCH_BUDGET = 3e7  # samples x H x M x T simulated by the whole width search (bounds large layers)
_MIN_BITS = 8
_HEADROOM = 0.75  # calibrated peak |h| of each mode -> 3/4 of the state limit


def poles(em: Any, name: str, dA: np.ndarray) -> qmath.PoleQuant:
    """Quantise the decay-rotations of ModeBank ``name`` and apply the precision policy."""
    p, opts = em.p, em.ctx.options
    horizon = em.plan.steps
    pq = qmath.quantize_poles(dA, p.decay_bits, horizon)
    one = 1 << p.decay_bits
    if pq.nudged.any():
        h, m = np.argwhere(pq.nudged)[0]
        em.ctx.warn(
            f"node '{name}': {int(pq.nudged.sum())} mode(s) have |dA| within half a unit of 1 at {p.decay_bits} "
            f"decay bits (e.g. channel {h} mode {m}: |dA| = {abs(dA[h, m]):.6f}, 1 = {one}); they were pulled to the "
            f"largest stable coefficient (faster decay). More decay bits (decay_bits) would keep them")
    worst = np.unravel_index(int(np.argmax(pq.deviation)), pq.deviation.shape)
    dev = float(pq.deviation[worst])
    if dev > opts.pole_tolerance:
        h, m = worst
        aq = complex(pq.a_re[h, m], pq.a_im[h, m])
        msg = (f"node '{name}': channel {h} mode {m}: the decay-rotation dA = {complex(dA[h, m]):.6f} "
               f"(|dA| = {abs(dA[h, m]):.6f}) quantised to {aq.real:.0f}{aq.imag:+.0f}i / {one} "
               f"(decay_bits = {p.decay_bits}) changes its impulse response by up to {dev:.3f} within the "
               f"{horizon}-step calibration horizon (tolerance {opts.pole_tolerance}); use a target with more "
               f"decay bits (decay_bits), retrain with a faster decay, or pass --allow-precision-loss "
               f"(on_precision='warn') to accept it")
        if opts.on_precision == "error":
            raise QuantizationError(msg)
        em.ctx.warn(msg)
    return pq


def mode_basis(dB: np.ndarray, peak: np.ndarray, s_u: float, target: float, wmax: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-mode input coefficients that are exact integers, and the state basis they imply.

    The integer state of mode (h, m) is h_int = h / (s_x beta_hm) (a diagonal similarity transform, exact in
    real arithmetic: dA is diagonal), so the input coefficient becomes b_int 2^-k_h with b_int = b'_hm a real
    integer in [1, wmax] (zero quantisation error). b' is chosen so that each mode's calibrated peak |h| maps to
    about ``target`` integer units: every mode uses the state width fully, whatever its |dB| and decay.
    Returns ``(b_int [H, M], k [H], gain [H, M])`` with gain = b_int 2^-k / (|dB| s_u) (units of 1/target per peak).
    """
    mag = np.abs(dB) * s_u  # input gain per integer input unit, [H, M]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        req = np.where(peak > 0, target * mag / peak, np.nan)  # wanted b' 2^-k per mode
        ok = np.isfinite(req) & (req > 0)
        has = ok.any(axis=1)
        r_max = np.where(ok, req, -np.inf).max(axis=1)
        r_min = np.where(ok, req, np.inf).min(axis=1)
        # k: the largest shift keeping the strongest mode's b' <= wmax, unless the modes span more than wmax:
        # then the weakest mode is kept at b' >= 1 and the strongest use fewer levels
        k_top = np.floor(np.log2(wmax / r_max))
        k_low = np.ceil(np.log2(1.0 / r_min))
        k = np.where(has, np.where(r_max / r_min > wmax, k_low, k_top), 0.0).astype(np.int64)
        want = req * 2.0 ** k[:, None]
        b = np.where(has[:, None] & np.isfinite(want), np.clip(np.floor(want), 1, wmax), wmax).astype(np.int64)
    return b, k, b * 2.0 ** -k[:, None]


def _bank(em: Any, n: fl.ModeBank, pq: qmath.PoleQuant, s_u: float, lim_u: int, peak: np.ndarray, bits: int
          ) -> tuple[hw.QModeBank, np.ndarray]:
    """The QModeBank for state width ``bits`` and its basis: h = basis * h_int (complex, [H, M])."""
    dB = n.dB.astype(np.complex128)
    wmax = int(min(em.p.wmax, em.p.acc_limit // max(1, lim_u)))  # one product b*u per compartment
    target = _HEADROOM * limit(bits)
    b, k, gain = mode_basis(dB, peak, s_u, target, wmax)
    # h_int,t = dA h_int,t-1 + gain u_int  and  h_t = dA h_t-1 + dB s_u u_int  =>  h = (dB s_u / gain) h_int
    basis = dB * s_u / gain
    bank = hw.QModeBank(a_re=pq.a_re, a_im=pq.a_im, b_re=b, b_im=np.zeros_like(b), b_shift=k,
                        coef_frac_bits=em.p.decay_bits, weight_bits=em.p.weight_bits, out_bits=bits,
                        out_scale=float(np.median(np.abs(basis))))
    return bank, basis


def _readout(em: Any, n: fl.ModeReadout, basis: np.ndarray, lim_x: int, s_u: float, lim_u: int, s_y: float,
             bits_y: int) -> hw.QModeReadout:
    """y = sum_m 2 Re(C_m basis_m h_int,m) + D u: c_re = 2 Re(C basis), c_im = -2 Im(C basis) (over s_y)."""
    cb = n.C.astype(np.complex128) * basis
    M = cb.shape[1]
    w_hat = np.concatenate([2 * cb.real, -2 * cb.imag, n.D.astype(np.float64)[:, None] * s_u], 1) / s_y
    lims = np.array([lim_x] * (2 * M) + [lim_u], np.float64)
    weight, shift = readout_rows(w_hat, em.p.wmax, em.p.acc_limit, lims)
    return hw.QModeReadout(c_re=weight[:, :M], c_im=weight[:, M:2 * M], d=weight[:, 2 * M],
                           shift=shift, weight_bits=em.p.weight_bits, out_bits=bits_y, out_scale=s_y)


def readout_rows(w_hat: np.ndarray, wmax: int, acc_limit: float, lims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(weight, shift)`` of :func:`qmath.quantize_rows` (no bias) with every row at once: the width search
    quantises H rows per candidate width. ``lims`` must be integers (state and input limits), so that the
    accumulator bound sum_i |W_i| lims_i is exact in float64 whatever the summation order."""
    w_hat = np.asarray(w_hat, np.float64)
    n_out, n_in = w_hat.shape
    lim_in = np.broadcast_to(np.asarray(lims, np.float64), (n_in,))
    mag = np.abs(w_hat)
    peak = mag.max(axis=1) if n_in else np.zeros(n_out)
    shift, live = _first_shifts(w_hat, mag, peak, wmax, acc_limit, lim_in)
    # a ternary row t 2^-j (one nonzero magnitude, a power of two) takes k = j: its mantissas are t itself
    low = np.where(w_hat != 0, mag, np.inf).min(axis=1) if n_in else np.zeros(n_out)
    mant, expo = np.frexp(peak)
    tern = live & (peak > 0) & (low == peak) & (mant == 0.5)
    shift = np.where(tern, np.minimum(shift, 1 - expo), shift)
    weight = np.zeros((n_out, n_in), np.int64)
    todo = np.flatnonzero(live)
    for _ in range(64):  # lower k until the row fits wmax and the accumulator (as quantize_rows, row by row)
        if not todo.size:
            break
        wi = round_half_away(w_hat[todo] * 2.0 ** shift[todo][:, None])
        a = np.abs(wi)
        fits = (a.max(axis=1, initial=0) <= wmax) & (a @ lim_in <= acc_limit)
        weight[todo] = wi
        shift[todo[~fits]] -= 1
        todo = todo[~fits]
    # strip the power of two shared by the whole row (exact)
    ors = np.bitwise_or.reduce(np.abs(weight), axis=1) if n_in else np.zeros(n_out, np.int64)
    p = np.where(ors > 0, np.frexp((ors & -ors).astype(np.float64))[1] - 1, 0).astype(np.int64)
    return weight >> p[:, None], shift - p


_NEAR = 1e-9  # log2 values this close to an integer are recomputed with the scalar arithmetic


def _first_shifts(w_hat: np.ndarray, mag: np.ndarray, peak: np.ndarray, wmax: int, acc_limit: float,
                  lim_in: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: k = min(floor(log2(wmax / peak)), floor(log2(acc_limit / sum_i |w_i| lim_i))) over the terms that
    exist, and whether any does: quantize_rows's scalar arithmetic (math.log2, one dot product per row).

    All rows at once; the vectorised sums and logarithms may differ from the scalar ones in the last bits, which
    moves a floor only when the logarithm is within that of an integer, so rows whose logarithm is within
    ``_NEAR`` of one (or not finite) are recomputed one by one with the scalar code: the same integers."""
    n_out = w_hat.shape[0]
    worst = mag @ lim_in if w_hat.shape[1] else np.zeros(n_out)
    has_w = peak > 0
    has_a = (worst > 0) & math.isfinite(acc_limit)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        l_w = np.log2(wmax / np.where(has_w, peak, 1.0))
        l_a = np.log2(acc_limit / np.where(has_a, worst, 1.0))

    def unsure(v: np.ndarray, has: np.ndarray) -> np.ndarray:
        return has & (~np.isfinite(v) | (np.abs(v - np.round(v)) < _NEAR))

    live = has_w | has_a
    with np.errstate(invalid="ignore"):  # inf - inf of rows that are redone anyway
        redo = unsure(l_w, has_w) | unsure(l_a, has_a)
        k = np.minimum(np.where(has_w, np.floor(l_w), np.inf), np.where(has_a, np.floor(l_a), np.inf))
    shift = np.where(live & ~redo, k, 0).astype(np.int64)
    for o in np.flatnonzero(redo):
        worst_o = float(np.abs(w_hat[o]) @ lim_in)
        cands = []
        if peak[o] > 0:
            cands.append(math.floor(math.log2(wmax / float(peak[o]))))
        if worst_o > 0 and math.isfinite(acc_limit):
            cands.append(math.floor(math.log2(acc_limit / worst_o)))
        shift[o] = min(cands)
    return shift, live


def _simulate(bank: hw.QModeBank, ro: hw.QModeReadout, u: np.ndarray) -> np.ndarray:
    """The readout's outputs [B, T, H] for bank inputs ``u`` [B, T, H] (the bank's output feeds only the readout):
    the numba loop of :mod:`neurocompile.passes._ssmscan` (the same integers as :func:`_simulate_numpy`, about
    ten times faster), or the NumPy form when numba does not import."""
    try:
        from neurocompile.passes._ssmscan import scan
    except ImportError:  # numba missing or broken: the NumPy form gives the same integers
        return _simulate_numpy(bank, ro, u)

    def i64(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a, np.int64)

    def lim(bits: int) -> int:
        return limit(bits) if bits > 0 else -1

    return scan(i64(u), i64(bank.a_re), i64(bank.a_im), i64(bank.b_re), i64(bank.b_im), i64(bank.b_shift),
                int(bank.coef_frac_bits), lim(bank.out_bits), i64(ro.c_re), i64(ro.c_im), i64(ro.d),
                i64(ro.shift), lim(ro.out_bits))


def _simulate_numpy(bank: hw.QModeBank, ro: hw.QModeReadout, u: np.ndarray) -> np.ndarray:
    """:func:`_simulate` with the integer kernels of sim/kernels.py (step_modebank, step_modereadout), the input
    products and the readout taken for a chunk of steps at once."""
    b, t_len, h = u.shape
    m = bank.a_re.shape[1]
    f = bank.coef_frac_bits
    re = np.zeros((b, h, m), np.int64)
    im = np.zeros((b, h, m), np.int64)
    y = np.zeros((b, t_len, h), np.int64)
    steps = max(1, 2**20 // max(1, b * h * m))  # about 8 MiB per chunk array
    kb = np.asarray(bank.b_shift, np.int64)[:, None]
    for t0 in range(0, t_len, steps):
        uc = np.asarray(u[:, t0:t0 + steps], np.int64)
        tc = uc.shape[1]
        d_re = rsh_round(bank.b_re * uc[..., None], kb)  # [B, tc, H, M]
        d_im = rsh_round(bank.b_im * uc[..., None], kb) if bank.b_im.any() else np.zeros_like(d_re)  # real b: 0
        s_re = np.empty_like(d_re)
        s_im = np.empty_like(d_im)
        for i in range(tc):
            new_re = rsh_trunc(bank.a_re * re - bank.a_im * im, f) + d_re[:, i]
            new_im = rsh_trunc(bank.a_im * re + bank.a_re * im, f) + d_im[:, i]
            re, im = sat(new_re, bank.out_bits)[0], sat(new_im, bank.out_bits)[0]
            s_re[:, i], s_im[:, i] = re, im
        acc = (ro.c_re * s_re + ro.c_im * s_im).sum(-1) + ro.d * uc
        y[:, t0:t0 + tc] = sat(rsh_round(acc, ro.shift), ro.out_bits)[0]
    return y


def quantize_ssm(em: Any, name: str, n: fl.ModeBank, ro_name: str, ro: fl.ModeReadout
                 ) -> tuple[hw.QModeBank, hw.QModeReadout, dict[str, Any]]:
    g, plan = em.g, em.plan
    if sorted(g.preds(ro_name, "skip")) != sorted(g.preds(name)):
        raise QuantizationError(f"ModeReadout '{ro_name}': its skip input must be the ModeBank '{name}' input")
    s_u, lim_u = plan.in_scale(name), plan.in_limit(name)
    s_y, bits_y = plan.scale[ro_name], plan.bits[ro_name]
    pq = poles(em, name, n.dA.astype(np.complex128))
    H, M = n.dA.shape
    u_f = sum(em.trace[p].astype(np.float64) for p in g.preds(name))
    y_f = em.trace[ro_name].astype(np.float64)
    t_len = u_f.shape[1]
    widths = max(1, min(em.p.state_bits, plan.cap) - _MIN_BITS + 1)
    k = int(max(1, min(_MAX_SAMPLES, u_f.shape[0], _BUDGET // max(1, H * M * t_len),
                       _SEARCH_BUDGET // max(1, widths * H * M * t_len))))
    u_int = np.clip(qmath.round_half_away(u_f[:k] / s_u), -lim_u, lim_u)
    top = min(em.p.state_bits, plan.cap)
    peaks = em.ctx.info.get("calib_mode_peak", {})
    if name in peaks:  # measured over every calibration sample by the calibrate pass
        peak = peaks[name].reshape(H, M)
    else:
        st = em.trace[name].astype(np.float64).reshape(u_f.shape[0], t_len, H, M, 2)
        peak = np.sqrt(st[..., 0] ** 2 + st[..., 1] ** 2).max(axis=(0, 1))  # calibrated max |h| per mode
    results = []
    for bits in range(min(_MIN_BITS, top), top + 1):
        bank, basis = _bank(em, n, pq, s_u, lim_u, peak, bits)
        rq = _readout(em, ro, basis, limit(bits), s_u, lim_u, s_y, bits_y)
        y = _simulate(bank, rq, u_int) * s_y
        results.append((qmath.sqnr_db(y_f[:k], y), bits, bank, rq, basis))
    sq, bits, bank, rq, basis = max(results, key=lambda r: (r[0], -r[1]))
    info = {"state_bits": int(bits), "readout_sqnr_db": _f(sq),
            "search": {str(r[1]): _f(r[0]) for r in results},
            "mode_basis": [basis.real.tolist(), basis.imag.tolist()],
            "poles_nudged": int(pq.nudged.sum()), "pole_max_deviation": float(pq.deviation.max()),
            "pole_max_rel_error": float(pq.rel_error.max())}
    return bank, rq, info


def _f(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None
