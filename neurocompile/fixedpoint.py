"""The fixed-point vocabulary every layer shares: signed limits, rounding and the quantiser's policy constants.

One definition each, imported by the IR verifier, the passes, the simulator kernels and QAT, so that a change of
rounding or of the ternary cut cannot leave one copy behind. Only NumPy here (the bottom layer imports nothing of
the project); QAT applies the same formulas to torch tensors through :func:`round_half_away_like`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["TERNARY_CUT", "limit", "round_half_away", "round_half_away_like"]

#: ternarisation threshold as a fraction of the row's mean magnitude: keep |w| > TERNARY_CUT * mean|w_o|
#: (Li et al. 2016, "Ternary weight networks": 0.7 approximates the optimal threshold for Gaussian weights)
TERNARY_CUT = 0.7


def limit(bits: int) -> int:
    """Largest magnitude of a symmetric signed ``bits``-bit value: 2^(bits-1) - 1 (0 for bits <= 0)."""
    return (1 << (bits - 1)) - 1 if bits >= 1 else 0


def round_half_away(x: npt.NDArray[Any] | float) -> npt.NDArray[np.int64]:
    """sign(x) floor(|x| + 0.5) as int64: round half away from zero (the spec's QInput and every quantiser)."""
    v = np.asarray(x, np.float64)
    out: npt.NDArray[np.int64] = (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.int64)
    return out


def round_half_away_like(x: Any) -> Any:
    """The same rounding on any array type with sign/floor/abs methods (torch tensors in QAT): stays float."""
    return x.sign() * (x.abs() + 0.5).floor()
