"""Quantisation arithmetic shared by the quantiser, the report and the tests (pure functions on arrays).

Notation: a value x is held as the integer x_int with x = x_int * s (s: the node's ``out_scale``). A dense
connection y = W x + b becomes, in integer units, y_int ~ W_hat x_int + b_hat with W_hat = W s_in / s_out and
b_hat = b / s_out; it is realised as y_int = rsh_round(W_int x_int + b_int, k) with W_int = round(W_hat 2^k)
(``weight_bits`` signed mantissas) and b_int = round(b_hat 2^k) (accumulator units): k is the per-channel shift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from neurocompile.fixedpoint import limit, round_half_away

__all__ = ["bits_for", "quantize_rows", "RowQuant", "quantize_poles", "PoleQuant", "make_lut", "sqnr_db",
           "round_half_away"]


def bits_for(max_abs: float) -> int:
    """The largest signed width whose symmetric limit 2^(b-1) - 1 does not exceed ``max_abs`` (at least 1)."""
    if max_abs < 1:
        return 1
    return int(math.floor(math.log2(max_abs + 1))) + 1


def sqnr_db(ref: np.ndarray, test: np.ndarray) -> float:
    """10 log10(sum ref^2 / sum (ref - test)^2); +inf when equal, -inf when ref is all zero but test is not."""
    ref = np.asarray(ref, np.float64)
    err = float(np.sum((ref - np.asarray(test, np.float64)) ** 2))
    sig = float(np.sum(ref ** 2))
    if err == 0.0:
        return math.inf
    if sig == 0.0:
        return -math.inf
    return 10.0 * math.log10(sig / err)


@dataclass
class RowQuant:
    """Per-output-channel quantised weights: ``weight`` [out, in], ``bias`` [out] (accumulator units), ``shift``."""

    weight: np.ndarray
    bias: np.ndarray
    shift: np.ndarray
    #: channels whose mantissa the accumulator limit forced below the full weight width
    acc_limited: list[int]
    #: per channel, bits of mantissa lost to the accumulator limit (0 when the weights use the full width)
    lost_bits: np.ndarray
    #: channels whose non-zero weights all rounded to 0 because of the accumulator limit
    zeroed: list[int]


def quantize_rows(w_hat: np.ndarray, wmax: int, acc_limit: float, in_limit: np.ndarray | float,
                  b_hat: np.ndarray | None = None) -> RowQuant:
    """Quantise real-valued integer-domain weights ``w_hat`` [out, in] (and bias ``b_hat`` [out]) per row.

    Each row gets the largest shift k with max |W_int| <= ``wmax`` and, for the accumulator,
    sum_i |W_int[i]| * in_limit[i] + |b_int| <= ``acc_limit`` (``in_limit``: the input's largest integer
    magnitude, per input or scalar). Afterwards each row is reduced by the power of two its weights and bias
    share (W, b / 2^p, k - p: the same integer results exactly), so ternary rows come out as {-1, 0, 1} x m;
    a row t * 2^-j (ternary with a power-of-two magnitude) is given k = j: its mantissas are exactly t.
    """
    w_hat = np.asarray(w_hat, np.float64)
    n_out, n_in = w_hat.shape
    b_hat = np.zeros(n_out) if b_hat is None else np.asarray(b_hat, np.float64)
    lim_in = np.broadcast_to(np.asarray(in_limit, np.float64), (n_in,))
    W = np.zeros((n_out, n_in), np.int64)
    B = np.zeros(n_out, np.int64)
    K = np.zeros(n_out, np.int64)
    limited, zeroed = [], []
    lost = np.zeros(n_out, np.int64)
    for o in range(n_out):
        row, bias = w_hat[o], float(b_hat[o])
        peak = float(np.abs(row).max()) if n_in else 0.0
        worst = float(np.abs(row) @ lim_in) + abs(bias)
        cands = []
        if peak > 0:
            cands.append(math.floor(math.log2(wmax / peak)))
        if worst > 0 and math.isfinite(acc_limit):
            cands.append(math.floor(math.log2(acc_limit / worst)))
        if not cands:  # all-zero row and bias
            continue
        k = min(cands)
        nz = np.abs(row[row != 0])
        if nz.size and np.all(nz == nz[0]) and math.frexp(float(nz[0]))[0] == 0.5:
            # a ternary row t * 2^-j: take k = j, so that the mantissas are t itself (exact; the bias then has a
            # resolution of 2^-j output units, finer than the output)
            k = min(k, -math.frexp(float(nz[0]))[1] + 1)
        for _ in range(64):
            wi = round_half_away(row * 2.0 ** k)
            bi = int(round_half_away(bias * 2.0 ** k))
            if int(np.abs(wi).max(initial=0)) <= wmax and float(np.abs(wi) @ lim_in) + abs(bi) <= acc_limit:
                break
            k -= 1
        if peak > 0 and k < math.floor(math.log2(wmax / peak)):
            limited.append(o)
            lost[o] = math.floor(math.log2(wmax / peak)) - k
            if not np.any(wi):
                zeroed.append(o)
        # strip the power of two shared by the whole row (exact)
        nz = np.concatenate([wi[wi != 0], [bi] if bi else []]).astype(np.int64)
        if nz.size:
            low = int(np.bitwise_or.reduce(np.abs(nz)))  # its lowest set bit: the fewest trailing zeros
            p = (low & -low).bit_length() - 1
            if p > 0:
                wi, bi, k = wi >> p, bi >> p, k - p
        W[o], B[o], K[o] = wi, bi, k
    return RowQuant(W, B, K, limited, lost, zeroed)


@dataclass
class PoleQuant:
    """Quantised decay-rotation coefficients with diagnostics (all [H, M] unless said otherwise)."""

    a_re: np.ndarray
    a_im: np.ndarray
    nudged: np.ndarray  # bool: |a| rounded to >= 2^F and was pulled inside the unit circle
    rel_error: np.ndarray  # |a_q - dA| / (1 - |dA|): error relative to the distance from the unit circle
    deviation: np.ndarray  # max over t <= horizon of |a_q^t - dA^t|


def quantize_poles(dA: np.ndarray, frac_bits: int, horizon: int) -> PoleQuant:
    """a = round(dA 2^F) per component (half away from zero), pulled inside |a| < 2^F where rounding reached it."""
    dA = np.asarray(dA, np.complex128)
    one = 1 << frac_bits
    a_re = round_half_away(dA.real * one)
    a_im = round_half_away(dA.imag * one)
    nudged = np.zeros(dA.shape, bool)
    for _ in range(4 * one):
        bad = a_re * a_re + a_im * a_im >= one * one
        if not bad.any():
            break
        nudged |= bad
        big_re = np.abs(a_re) >= np.abs(a_im)
        a_re = np.where(bad & big_re, a_re - np.sign(a_re), a_re)
        a_im = np.where(bad & ~big_re, a_im - np.sign(a_im), a_im)
    aq = (a_re + 1j * a_im) / one
    dist = np.maximum(1.0 - np.abs(dA), 1e-300)
    rel = np.abs(aq - dA) / dist
    t = np.arange(1, max(int(horizon), 1) + 1)
    dev = np.abs(aq[..., None] ** t - dA[..., None] ** t).max(axis=-1)
    return PoleQuant(a_re.astype(np.int64), a_im.astype(np.int64), nudged, rel, dev)


#: ends of the table where the tabulated function is flat: clamping the index there costs nothing
FLAT_ENDS = {"sigmoid": (True, True), "gelu": (True, False), "relu": (True, False), "identity": (False, False)}


def lut_clamps(table_size: int, in_shift: int, offset: int, fn: str, x_int: np.ndarray) -> tuple[int, int]:
    """(clamped indices, clamped indices where ``fn`` is not flat: real saturation) for integer inputs ``x_int``."""
    x = np.asarray(x_int, np.int64)
    idx = ((x + (1 << (in_shift - 1))) >> in_shift if in_shift > 0 else x) + offset
    low, high = int(np.count_nonzero(idx < 0)), int(np.count_nonzero(idx >= table_size))
    flat_lo, flat_hi = FLAT_ENDS.get(fn, (False, False))
    return low + high, (0 if flat_lo else low) + (0 if flat_hi else high)


def make_lut(fn, s_in: float, lo: float, hi: float, s_out: float, out_bits: int, max_entries: int
             ) -> tuple[np.ndarray, int, int]:
    """Table of ``fn`` for inputs x_int (scale ``s_in``) covering [lo, hi]: ``(table, in_shift, offset)``.

    Index = rsh_round(x_int, in_shift) + offset; entry i holds round(fn(c_i) / s_out), c_i = (i - offset) 2^in_shift
    s_in (the bin centre), clipped to ``out_bits``. The table has at most ``max_entries`` entries.
    """
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    span = max(hi - lo, s_in)
    shift = max(0, math.ceil(math.log2(span / (s_in * (max_entries - 1)))))
    step = s_in * 2.0 ** shift
    i_lo = math.floor(lo / step)
    i_hi = math.ceil(hi / step)
    n = min(i_hi - i_lo + 1, max_entries)
    offset = -i_lo
    centres = (np.arange(n) - offset) * step
    lim = limit(out_bits)
    table = np.clip(round_half_away(fn(centres) / s_out), -lim, lim).astype(np.int64)
    return table, int(shift), int(offset)
