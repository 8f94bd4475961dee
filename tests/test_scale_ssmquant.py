"""The SSM state-width search's vectorised pieces equal their one-channel-at-a-time definitions."""

from __future__ import annotations

import math

import numpy as np

from neurocompile.passes.ssmquant import mode_basis


def _basis_loop(dB, peak, s_u, target, wmax):
    """mode_basis by its definition, one channel at a time."""
    mag = np.abs(dB) * s_u
    with np.errstate(divide="ignore", invalid="ignore"):
        req = np.where(peak > 0, target * mag / peak, np.nan)
    H, M = dB.shape
    b = np.full((H, M), wmax, np.int64)
    k = np.zeros(H, np.int64)
    for h in range(H):
        r = req[h][np.isfinite(req[h]) & (req[h] > 0)]
        if r.size == 0:
            continue
        kh = math.floor(math.log2(wmax / r.max()))
        if r.max() / r.min() > wmax:
            kh = math.ceil(math.log2(1.0 / r.min()))
        k[h] = kh
        want = req[h] * 2.0 ** kh
        b[h] = np.where(np.isfinite(want), np.clip(np.floor(want), 1, wmax), wmax)
    return b, k, b * 2.0 ** -k[:, None]


def test_mode_basis_equals_channel_loop():
    rng = np.random.default_rng(0)
    for trial in range(40):
        H, M = int(rng.integers(1, 40)), int(rng.integers(1, 12))
        dB = (rng.normal(size=(H, M)) + 1j * rng.normal(size=(H, M))) * 10.0 ** rng.uniform(-4, 2, size=(H, 1))
        peak = np.abs(rng.normal(size=(H, M))) * 10.0 ** rng.uniform(-3, 3, size=(H, M))
        peak[rng.uniform(size=(H, M)) < 0.1] = 0.0  # modes never excited
        peak[0] = 0.0  # a channel with no excited mode keeps b = wmax, k = 0
        dB[rng.uniform(size=(H, M)) < 0.05] = 0.0
        wmax = int(rng.choice([1, 7, 127, 255, 32767]))
        target = 0.75 * (2 ** int(rng.integers(7, 24)) - 1)
        s_u = 0.37
        got, want = mode_basis(dB, peak, s_u, target, wmax), _basis_loop(dB, peak, s_u, target, wmax)
        for a, b in zip(got, want):
            assert a.dtype == b.dtype and np.array_equal(a, b), trial
        assert got[0][0].tolist() == [wmax] * M and got[1][0] == 0
