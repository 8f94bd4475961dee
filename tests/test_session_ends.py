"""Session's sequence-end outputs (the plan resolved once, denses through their compiled whole-chunk form) equal the
whole-sequence run's, for per-channel shifts of both signs, both roundings, saturating widths and summed ports."""

from __future__ import annotations

import numpy as np
import pytest

from neurocompile import Session
from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.sim.engine import simulate

I = np.int64
BACKENDS = ["reference", pytest.param("compiled", marks=pytest.mark.skipif(
    __import__("importlib").util.find_spec("numba") is None, reason="numba not installed"))]


def ends_graph(seed: int) -> Graph:
    """x -> enc -> pool (QAccumulate) -> head (floor, mixed shifts, saturating) and head2 (nearest, reads pool
    and a per-step node through one summed port) -> out = head + head2 (QAdd after the sequence end)."""
    rng = np.random.default_rng(seed)
    h = int(rng.integers(3, 9))
    g = Graph(f"ends{seed}")
    g.add("x", hw.QInput(size=2, out_scale=0.1, out_bits=8))
    g.inputs = ["x"]
    g.add("enc", hw.QDense(weight=rng.integers(-50, 51, (h, 2)).astype(I), bias=np.zeros(h, I),
                           shift=np.full(h, 3, I), out_bits=10), "x")
    g.add("pool", hw.QAccumulate(size=h, out_bits=20), "enc")
    g.add("head", hw.QDense(weight=rng.integers(-30, 31, (4, h)).astype(I), bias=rng.integers(-9, 10, 4).astype(I),
                            shift=np.array([-1, 0, 3, 6], I), rounding="floor", out_bits=7), "pool")
    g.add("head2", hw.QDense(weight=rng.integers(-30, 31, (4, h)).astype(I), bias=np.zeros(4, I),
                             shift=np.array([2, 5, 0, 4], I), out_bits=12), ["pool", "enc"])
    g.add("out", hw.QAdd(size=4, out_bits=9), ["head", "head2"])
    g.outputs = ["out", "head"]
    return g


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", range(3))
def test_sequence_end_outputs_equal_whole_sequence(backend: str, seed: int) -> None:
    g = ends_graph(seed)
    rng = np.random.default_rng(50 + seed)
    n, steps = 3, 6
    x = rng.standard_normal((n, steps, 2)) * 30.0
    whole = simulate(g, x, backend="numpy", record=True)
    assert whole.trace is not None
    assert np.any(np.abs(whole.outputs["head"]) == 63)  # head saturates at 7 bits
    s = Session(g, backend=backend)
    for i in range(n):
        s.reset()
        for t in range(steps):
            o = s.step(x[i, t])
            cut = simulate(g, x[i: i + 1, : t + 1], backend="numpy", counters=False)
            for k in ("out", "head"):  # the outputs of the sequence cut after step t
                assert np.array_equal(o[k], cut.outputs[k][0]), (i, t, k)
        assert np.array_equal(s.outputs()["out"][0], whole.outputs["out"][i])
