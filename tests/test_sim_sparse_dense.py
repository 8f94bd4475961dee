"""Whole-chunk dense layers with sparse inputs add weight rows per non-zero input (compiled_whole.dense_sparse)
instead of a BLAS product: the same integers, every rounding, shift and saturation, spikes and graded values."""

from __future__ import annotations

import numpy as np
import pytest
from test_sim_compiled import assert_identical

from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.sim import compiled, compiled_nodes
from neurocompile.sim.engine import plan, simulate

pytest.importorskip("numba")


def _graph(rounding: str, seed: int, w2: int = 127) -> Graph:
    """x (graded, 8 bit) -> d1 (wide, small out_bits: saturates) and x -> lif -> d2 (spikes; weights up to w2:
    stored as int8, int16 or int32)."""
    rng = np.random.default_rng(seed)
    g = Graph("sparse")
    g.add("x", hw.QInput(size=48, out_scale=1.0, out_bits=8))
    g.inputs = ["x"]
    shift = rng.integers(-2, 7, 40)  # left shifts, none, right shifts: every branch of the finish
    g.add("d1", hw.QDense(weight=rng.integers(-127, 128, (40, 48)), bias=rng.integers(-50, 50, 40), shift=shift,
                          rounding=rounding, out_bits=10), "x")
    g.add("lif", hw.QLIF(decay=2048, vth=np.full(48, 20, np.int64), state_bits=16), "x")
    g.add("d2", hw.QDense(weight=rng.integers(-w2, w2 + 1, (24, 48)), bias=np.zeros(24, np.int64),
                          shift=np.full(24, 1, np.int64), rounding=rounding, out_bits=12), "lif")
    g.add("y", hw.QAdd(size=40, out_bits=16), ["d1"])
    g.outputs = ["y", "d2"]
    return g


def _inputs(seed: int, density: float, n: int = 6, steps: int = 90) -> np.ndarray:
    rng = np.random.default_rng(seed + 100)
    vals = rng.choice(np.array([1, -1, 3, -7, 64, 127, -127]), size=(n, steps, 48))
    return np.where(rng.random((n, steps, 48)) < density, vals, 0).astype(np.float32)


@pytest.mark.parametrize("rounding", ["round", "floor"])
@pytest.mark.parametrize("density", [0.05, 0.9])
@pytest.mark.parametrize("w2", [127, 2000, 40000])
def test_sparse_and_blas_whole_denses_equal_the_reference(rounding: str, density: float, w2: int,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from neurocompile.sim import compiled_whole

    g = _graph(rounding, seed=int(density * 10), w2=w2)
    p = plan(g)
    assert p.path["d1"] == p.path["d2"] == "float32-blas"
    calls: list[str] = []

    def spy(fn: str):
        real = getattr(compiled_whole, fn)

        def run(*a):
            calls.append(fn)
            return real(*a)
        monkeypatch.setattr(compiled_whole, fn, run)
    spy("dense_sparse")
    spy("dense_finish")
    monkeypatch.setattr(compiled, "WHOLE_MIN_ROWS", 1)
    monkeypatch.setattr(compiled, "WHOLE_MIN_WORK", 1)
    monkeypatch.setattr(compiled_nodes, "SPARSE_SAMPLE", 7)  # the density sample shorter than a chunk
    x = _inputs(0, density)
    kw = {"batch_size": 4, "counters": True, "record": True}
    comp = simulate(g, x, backend="compiled", **kw)
    assert compiled.program(plan(g)).whole == {"d1", "d2"}
    assert any(v > 0 for v in comp.saturations.values())  # the widths bite
    # 2 batches of 1 chunk, 2 denses: all event-driven for sparse inputs; the dense graded input through BLAS
    assert calls.count("dense_sparse") == 4 if density < 0.25 else calls.count("dense_finish") >= 2
    if density < 0.25:  # the weights' storage type
        lay = compiled.Layout(compiled.program(plan(g)), 1)
        lay.advance({"x": x[:1]}, 90)
        assert lay._wcache["d2"]["wi"].dtype == {127: np.int8, 2000: np.int16, 40000: np.int32}[w2]
    assert_identical(simulate(g, x, arith="reference", **kw), comp, f"sparse {density} {rounding}")
