"""The compiled step quantises graph inputs in one compiled pass; it equals NumPy's quantiser on every value,
halves and saturation included, and leaves values NumPy defines by its own cast (NaN, inf, beyond int64) to it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from test_sim_compiled import assert_identical

from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.sim import compiled
from neurocompile.sim.engine import simulate

pytest.importorskip("numba")

I = np.int64


def input_graph(bits: int, scale: float) -> Graph:
    g = Graph(f"in{bits}")
    g.add("x", hw.QInput(size=3, out_scale=scale, out_bits=bits))
    g.inputs = ["x"]
    g.add("acc", hw.QAccumulate(size=3, out_bits=0), "x")
    g.outputs = ["acc", "x"]
    return g


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bits, scale", [(8, 0.5), (4, 0.1), (0, 0.25)])
def test_input_quantiser_equals_numpy(dtype: type, bits: int, scale: float) -> None:
    rng = np.random.default_rng(bits)
    x = (rng.standard_normal((4, 7, 3)) * 40).astype(dtype)
    x[0, :4, 0] = np.array([0.25, -0.25, 0.75, -1.25], dtype) * scale * 2  # exact halves: away from zero
    x[1, 0] = -0.0
    kw = {"record": True, "counters": False}
    comp, ref = simulate(input_graph(bits, scale), x, backend="compiled", **kw), \
        simulate(input_graph(bits, scale), x, backend="numpy", **kw)
    assert comp.backend == "compiled"
    assert_identical(ref, comp, f"inputs {dtype.__name__}, {bits} bits")
    assert (ref.saturations["x"] > 0) == (bits in (4, 8))


def test_values_numpy_defines_take_its_path(monkeypatch: pytest.MonkeyPatch) -> None:
    g = input_graph(8, 0.5)
    x = np.zeros((2, 3, 3))
    x[0, 1] = [np.nan, np.inf, -np.inf]
    x[1, 2, 0] = 1e300
    calls = []
    real = compiled.quantize_round
    monkeypatch.setattr(compiled, "quantize_round", lambda *a: calls.append(1) or real(*a))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        comp, ref = simulate(g, x, backend="compiled", record=True), simulate(g, x, backend="numpy", record=True)
    assert calls  # the compiled pass declined; NumPy's cast decided
    assert_identical(ref, comp, "non-finite inputs")
