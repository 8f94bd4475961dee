"""Fixed-point primitives of docs/semantics.md, vectorised over NumPy int64 arrays.

These three helpers are the only rounding and clipping operations the integer graph uses.
"""

from __future__ import annotations

import numpy as np

from neurocompile.fixedpoint import limit, round_half_away

__all__ = ["limit", "quantize_round", "rsh_floor", "rsh_round", "rsh_trunc", "sat"]


def rsh_trunc(x: np.ndarray, s: int) -> np.ndarray:
    """sign(x) * (|x| >> s): right shift by ``s`` bits rounding toward zero (Lava's LIF/RF decays)."""
    x = np.asarray(x, dtype=np.int64)
    if s <= 0:
        return x << -s
    return np.sign(x) * (np.abs(x) >> s)


def rsh_round(x: np.ndarray, s: np.ndarray | int) -> np.ndarray:
    """floor((x + 2^(s-1)) / 2^s): right shift rounding half up; ``s`` <= 0 shifts left by -s bits.

    ``s`` may be an array broadcast against ``x`` (per-channel shifts).
    """
    x = np.asarray(x, dtype=np.int64)
    s = np.asarray(s, dtype=np.int64)
    if s.ndim == 0:
        k = int(s)
        if k > 0:
            return (x + (1 << (k - 1))) >> k
        return x << -k
    pos = np.maximum(s, 0)
    half = np.where(pos > 0, np.left_shift(np.int64(1), np.maximum(pos - 1, 0)), 0)
    return np.where(s > 0, (x + half) >> pos, x << np.maximum(-s, 0))


def rsh_floor(x: np.ndarray, s: np.ndarray | int) -> np.ndarray:
    """Arithmetic right shift (floor) by ``s`` bits; ``s`` <= 0 shifts left (Lava Dense's weight_exp)."""
    x = np.asarray(x, dtype=np.int64)
    s = np.asarray(s, dtype=np.int64)
    return np.where(s > 0, x >> np.maximum(s, 0), x << np.maximum(-s, 0))


def sat(x: np.ndarray, bits: int) -> tuple[np.ndarray, int]:
    """Clip to [-(2^(bits-1) - 1), 2^(bits-1) - 1]; returns (clipped, number of clipped values).

    ``bits`` = 0 means no saturation (host-side values).
    """
    if bits <= 0:
        return x, 0
    m = limit(bits)
    if np.size(x) == 0 or (np.max(x) <= m and np.min(x) >= -m):  # fast path: nothing to clip
        return x, 0
    n = int(np.count_nonzero((x > m) | (x < -m)))
    if n == 0:
        return x, 0
    return np.clip(x, -m, m), n


def quantize_round(x: np.ndarray, scale: float) -> np.ndarray:
    """round-half-away-from-zero(x / scale) as int64 (the input quantiser of QInput)."""
    return round_half_away(np.asarray(x, dtype=np.float64) / scale)
