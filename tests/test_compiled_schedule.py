"""Whole-chunk (node-major) scheduling of the compiled step: which nodes run over a whole chunk, in which group
the others step, and that every schedule gives the NumPy engine's results bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.sim import compiled
from neurocompile.sim.engine import plan, simulate

pytest.importorskip("numba")
I = np.int64


def _chain(h: int = 64) -> Graph:
    """x -> d0 -> lif0 -> d1 -> lut -> lif1 -> d2 -> pool: dense layers between stateful nodes."""
    rng = np.random.default_rng(0)
    w = lambda o, i: rng.integers(-60, 61, (o, i)).astype(I)  # noqa: E731
    g = Graph("chain")
    g.add("x", hw.QInput(size=8, out_scale=0.05, out_bits=8))
    g.inputs = ["x"]
    g.add("d0", hw.QDense(weight=w(h, 8), bias=np.zeros(h, I), shift=np.full(h, 4, I), out_bits=12), "x")
    g.add("lif0", hw.QLIF(decay=3000, vth=np.full(h, 40, I)), "d0")
    g.add("d1", hw.QDense(weight=w(h, h), bias=np.zeros(h, I), shift=np.full(h, 2, I), out_bits=10), "lif0")
    table = rng.integers(-100, 101, 64).astype(I)
    g.add("lut", hw.QLUT(table=table, in_shift=3, offset=32, size=h, out_bits=8), "d1")
    g.add("lif1", hw.QLIF(decay=2000, vth=np.full(h, 30, I)), "lut")
    g.add("d2", hw.QDense(weight=w(h, h), bias=np.zeros(h, I), shift=np.full(h, 1, I), out_bits=12), "lif1")
    g.add("pool", hw.QAccumulate(size=h, out_bits=24), "d2")
    g.outputs = ["pool", "lif1"]
    return g


def test_schedule_groups_stateful_nodes_between_whole_chunk_products() -> None:
    prog = compiled.program(plan(_chain()))
    sch = compiled.schedule(prog, None)
    assert {n for n, k in sch.kind.items() if k == "whole"} == {"d0", "d1", "d2"}
    assert sch.groups == 3  # lif0 | lut, lif1 | pool, each after the product that feeds it
    assert [sch.at[n] for n in ("lif0", "lut", "lif1", "pool")] == [0, 1, 1, 2]
    assert sch.replay == [["d0"], ["d1"], ["d2"]]
    assert {"lif0", "lif1"} <= sch.keep  # read by the next product
    small = compiled.schedule(prog, 8)  # a chunk of a few rows: everything steps in one group
    assert small.groups == 1 and set(small.kind.values()) == {"in", "step"}


@pytest.mark.parametrize("chunk_rows", [3, 64, 2048])
def test_every_schedule_equals_the_numpy_engine(chunk_rows: int, monkeypatch: pytest.MonkeyPatch) -> None:
    g = _chain()
    x = np.random.default_rng(1).standard_normal((5, 23, 8)) * 4
    monkeypatch.setattr(compiled, "CHUNK_ROWS", chunk_rows)
    monkeypatch.setattr(compiled, "WHOLE_MIN_ROWS", 1)
    monkeypatch.setattr(compiled, "WHOLE_MIN_WORK", 1)
    kw = {"record": True, "target": "loihi2", "batch_size": 4}
    a, b = simulate(g, x, backend="compiled", **kw), simulate(g, x, backend="numpy", **kw)
    assert a.counts == b.counts and a.saturations == b.saturations and a.spikes == b.spikes
    for k in b.trace:
        assert np.array_equal(a.trace[k], b.trace[k]), k
    for k, d in b.final_states.items():
        for sk, v in d.items():
            assert np.array_equal(a.final_states[k][sk], v), (k, sk)
    assert a.spikes["lif1"] > 0


def test_a_table_read_by_features_is_not_a_token_check() -> None:
    """Only an embedding's token ids are range-checked: a LUT after a float input runs compiled."""
    g = Graph("lutin")
    g.add("x", hw.QInput(size=3, out_scale=0.01, out_bits=10))
    g.inputs = ["x"]
    g.add("lut", hw.QLUT(table=np.arange(8, dtype=I), in_shift=6, offset=4, size=3, out_bits=8), "x")
    g.outputs = ["lut"]
    x = np.full((2, 4, 3), 50.0)  # raw feature values far above the table size
    res = simulate(g, x, backend="compiled", counters=False)
    assert np.array_equal(res.outputs["lut"], simulate(g, x, backend="numpy", counters=False).outputs["lut"])
