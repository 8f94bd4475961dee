"""Optimisations of the executable spec (sim/fixed.py) do not change its results."""

from __future__ import annotations

import numpy as np
import pytest

from neurocompile.sim.fixed import limit, sat


def sat_spec(x: np.ndarray, bits: int) -> tuple[np.ndarray, int]:
    """sat as first written: count the values outside [-(2^(b-1) - 1), 2^(b-1) - 1], then clip."""
    if bits <= 0:
        return x, 0
    m = limit(bits)
    n = int(np.count_nonzero((x > m) | (x < -m)))
    if n == 0:
        return x, 0
    return np.clip(x, -m, m), n


@pytest.mark.parametrize("bits", [0, 1, 2, 3, 8, 24, 32, 63])
def test_sat_equals_its_first_form(bits: int) -> None:
    rng = np.random.default_rng(bits)
    m = limit(bits) if bits > 0 else 1 << 40
    edges = np.array([0, m, -m, m + 1, -m - 1, -(m + 1), 1, -1], np.int64) if m < (1 << 62) else np.array([0, m, -m])
    cases = [
        edges,
        rng.integers(-2 * m - 2, 2 * m + 3, (17, 5)) if m < (1 << 61) else rng.integers(-m, m, (17, 5)),
        rng.integers(-m, m + 1, (4, 3, 2)),  # never clipped
        np.zeros((0, 3), np.int64),
        np.array(m, np.int64),
    ]
    for x in cases:
        got, n = sat(x, bits)
        want, n_want = sat_spec(x, bits)
        assert n == n_want and np.array_equal(got, want) and got.dtype == want.dtype
        if n_want == 0:
            assert got is x  # unclipped input returned as is, as before
