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


def test_readout_rows_equal_quantize_rows():
    from neurocompile.passes.qmath import quantize_rows
    from neurocompile.passes.ssmquant import readout_rows

    rng = np.random.default_rng(1)
    for trial in range(60):
        n_out, n_in = int(rng.integers(1, 30)), int(rng.integers(1, 40))
        w = rng.normal(size=(n_out, n_in)) * 10.0 ** rng.uniform(-6, 4, size=(n_out, 1))
        w[rng.uniform(size=w.shape) < 0.2] = 0.0
        w[0] = 0.0  # an all-zero row
        if n_out > 1:  # a ternary row t 2^-j
            w[1] = rng.integers(-1, 2, size=n_in) * 2.0 ** -int(rng.integers(0, 12))
        lims = rng.integers(1, 2**15, size=n_in).astype(np.float64)
        wmax = int(rng.choice([1, 127, 32767]))
        acc = float(rng.choice([2.0**23 - 1, 2.0**31 - 1, 2.0**12, np.inf]))
        ref = quantize_rows(w, wmax, acc, lims)
        weight, shift = readout_rows(w, wmax, acc, lims)
        assert np.array_equal(weight, ref.weight) and np.array_equal(shift, ref.shift), trial


def test_width_search_simulation_equals_reference_kernels():
    from neurocompile.ir import hw
    from neurocompile.passes.ssmquant import _simulate
    from neurocompile.sim.reference import run_node

    rng = np.random.default_rng(2)
    for trial in range(6):
        b, t, h, m = int(rng.integers(1, 4)), int(rng.integers(1, 30)), int(rng.integers(1, 9)), int(rng.integers(1, 6))
        bits = int(rng.choice([8, 12, 16]))
        mag = rng.uniform(0.5, 0.99, size=(h, m)) * 2**12
        ang = rng.uniform(-1, 1, size=(h, m))
        bank = hw.QModeBank(a_re=np.round(mag * np.cos(ang)).astype(np.int64),
                            a_im=np.round(mag * np.sin(ang)).astype(np.int64),
                            b_re=rng.integers(1, 127, size=(h, m)), b_im=rng.integers(-3, 4, size=(h, m)) * (trial > 2),
                            b_shift=rng.integers(-2, 6, size=h), coef_frac_bits=12, weight_bits=8, out_bits=bits)
        ro = hw.QModeReadout(c_re=rng.integers(-127, 128, size=(h, m)), c_im=rng.integers(-127, 128, size=(h, m)),
                             d=rng.integers(-127, 128, size=h), shift=rng.integers(0, 10, size=h), weight_bits=8,
                             out_bits=int(rng.choice([8, 16])))
        u = rng.integers(-127, 128, size=(b, t, h)) * (1 + 30 * (trial % 2))  # odd trials saturate the state
        ref = run_node(ro, {"state": run_node(bank, {"in": u}), "skip": u})
        assert np.array_equal(_simulate(bank, ro, u), ref), trial
