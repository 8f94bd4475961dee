"""Every integer node type on Lava (neurocompile's fixed_pt ProcessModels) against the simulator, bit for bit.

Hand-built graphs cover every node, several connections summed on one port, saturating widths, both
roundings, a QDense delay, token inputs and the sequence end. Every node's output at every step and every
final state must be identical. Each graph also runs batched (B samples side by side, padding included).
"""

from __future__ import annotations

import numpy as np
import pytest

from neurocompile.backends.lava import lava_available
from neurocompile.ir import hw
from neurocompile.ir.graph import Graph


def needs_lava(test):
    """Marks a test that runs Lava (select with ``-m lava``); skips it when lava-nc 0.10.0 does not import."""
    return pytest.mark.lava(pytest.mark.skipif(not lava_available(), reason="lava-nc 0.10.0 not importable")(test))

I = np.int64


def _ssm_graph(rng: np.random.Generator) -> Graph:
    """Input -> encoder -> modes -> readout (+skip) -> LIF, Heaviside, refractory -> residual -> pool -> head."""
    h, m, d = 4, 3, 2
    g = Graph("ssm")
    g.add("x", hw.QInput(size=d, out_scale=0.01, out_bits=10))
    g.inputs = ["x"]
    g.add("enc", hw.QDense(weight=rng.integers(-127, 128, (h, d)), bias=rng.integers(-50, 50, h),
                           shift=np.array([6, 7, 5, 4]), out_bits=14), "x")
    g.add("mb", hw.QModeBank(a_re=rng.integers(2000, 4000, (h, m)), a_im=rng.integers(-1500, 1500, (h, m)),
                             b_re=rng.integers(-127, 128, (h, m)), b_im=rng.integers(-127, 128, (h, m)),
                             b_shift=np.array([1, 2, 0, 3]), out_bits=17), "enc")  # narrow: saturates at times
    g.add("ro", hw.QModeReadout(c_re=rng.integers(-127, 128, (h, m)), c_im=rng.integers(-127, 128, (h, m)),
                                d=rng.integers(-127, 128, h), shift=np.array([13, 14, 12, 15]), out_bits=12),
          {"state": "mb", "skip": "enc"})
    g.add("lif", hw.QLIF(decay=512, vth=np.array([100, 200, 50, 300])), "ro")
    g.add("lif_sub", hw.QLIF(decay=3000, vth=np.array([60, 60, 90, 20]), reset="subtract", compare=">",
                             state_bits=11), "ro")
    g.add("hs", hw.QHeaviside(vth=np.array([0, 10, -5, 3])), "ro")
    g.add("refr", hw.QRefractory(decay=2048, lam=3000, vth=np.array([80, 40, 120, 60]), rho=np.array([30, 5, 60, 0]),
                                 trace_frac_bits=6, state_bits=16), "ro")
    g.add("res", hw.QAdd(size=h, out_bits=3), ["lif", "lif_sub", "hs", "refr"])  # 4 connections, one port
    g.add("pool", hw.QAccumulate(size=h, out_bits=6), "res")  # saturates
    g.add("head", hw.QDense(weight=rng.integers(-10, 10, (3, h)), bias=np.array([5, -5, 0]), shift=np.zeros(3, I),
                            out_bits=0), "pool")
    g.outputs = ["head"]
    return g


def _gate_graph(rng: np.random.Generator) -> Graph:
    """Tokens -> embedding -> GLU (dense a, dense b -> LUT -> mul) -> ternarise -> delayed floor dense."""
    vocab, h = 7, 5
    g = Graph("gate")
    g.add("tok", hw.QInput(size=1, tokens=True, vocab=vocab))
    g.inputs = ["tok"]
    g.add("emb", hw.QEmbedding(table=rng.integers(-500, 500, (vocab, h)), out_bits=12), "tok")
    g.add("a", hw.QDense(weight=rng.integers(-127, 128, (h, h)), bias=np.zeros(h, I), shift=np.full(h, 7, I),
                         out_bits=12), "emb")
    g.add("b", hw.QDense(weight=rng.integers(-127, 128, (h, h)), bias=rng.integers(-300, 300, h),
                         shift=np.array([7, 8, 6, 7, 8]), rounding="floor", out_bits=12), "emb")
    table = np.round(255 / (1 + np.exp(-np.linspace(-6, 6, 33)))).astype(I)
    g.add("sig", hw.QLUT(table=table, in_shift=5, offset=16, fn="sigmoid", size=h, out_bits=9), "b")  # clamps
    g.add("glu", hw.QMul(shift=8, size=h, out_bits=10), {"a": "a", "b": "sig"})
    g.add("tern", hw.QTernarize(num=3, den=20, size=h), "glu")
    g.add("mix", hw.QDense(weight=rng.integers(-127, 128, (3, h)), bias=np.array([1, 0, -1]),
                           shift=np.array([9, 8, 10]), rounding="floor", delay=2, out_bits=8), ["tern", "emb"])
    g.add("out", hw.QAdd(size=3, out_bits=24), ["mix"])
    g.outputs = ["out"]
    return g


def _check(graph: Graph, x: np.ndarray, batch: int | None) -> None:
    from neurocompile.backends import lava as nl
    from neurocompile.backends.lava.compare import compare, simulate_reference

    res = nl.run(nl.load(graph, batch=batch), x)
    for engine in (True, False):  # the simulator's engine, and a plain loop over its kernels
        ref = simulate_reference(graph, x, engine=engine)
        cmp = compare(graph, res, ref)
        assert cmp.equal, f"engine={engine}: {cmp}"
    assert set(res) == set(graph.order())
    for name in graph.order():  # every node produced a full trace
        assert res[name].shape[0] == x.shape[0]


@needs_lava
@pytest.mark.parametrize("batch", [None, 2])
def test_ssm_nodes_match_simulator(batch: int | None) -> None:
    rng = np.random.default_rng(11)
    g = _ssm_graph(rng)
    x = rng.normal(scale=2.0, size=(3, 24, 2))
    _check(g, x, batch)


@needs_lava
@pytest.mark.parametrize("batch", [None, 3])
def test_gate_nodes_match_simulator(batch: int | None) -> None:
    rng = np.random.default_rng(12)
    g = _gate_graph(rng)
    x = rng.integers(0, 7, (3, 20))
    _check(g, x, batch)


@needs_lava
def test_saturation_and_clamping_are_exercised() -> None:
    """The graphs above only test something if they hit the widths: check the simulator saturates there."""
    from neurocompile.backends.lava.compare import simulate_reference

    rng = np.random.default_rng(11)
    g = _ssm_graph(rng)
    ref = simulate_reference(g, rng.normal(scale=2.0, size=(3, 24, 2)))
    assert all(ref.saturations[k] > 0 for k in ("mb", "res", "pool")), ref.saturations
    assert ref.traces["lif"].any() and ref.traces["refr"].any() and ref.traces["lif_sub"].any() and ref.traces["hs"].any()
    rng = np.random.default_rng(12)
    g = _gate_graph(rng)
    ref = simulate_reference(g, rng.integers(0, 7, (3, 20)))
    assert all(ref.saturations[k] > 0 for k in ("sig", "glu", "mix")), ref.saturations
    assert (ref.traces["tern"] == -1).any() and (ref.traces["tern"] == 1).any()


@needs_lava
def test_steps_and_repeated_runs() -> None:
    """``steps`` truncates; a network runs again (fresh Processes each run) and each sample starts from zero."""
    from neurocompile.backends import lava as nl

    rng = np.random.default_rng(13)
    g = _ssm_graph(rng)
    x = rng.normal(scale=2.0, size=(2, 16, 2))
    net = nl.load(g)
    full = nl.run(net, x)
    part = nl.run(net, x, steps=9)
    np.testing.assert_array_equal(part["lif"], full["lif"][:, :9])
    swapped = nl.run(net, x[::-1])
    np.testing.assert_array_equal(swapped["mb"], full["mb"][::-1])
    import multiprocessing as mp

    assert mp.active_children() == []  # every run stopped its runtime


@needs_lava
def test_simulate_lava_returns_a_checked_sim_result() -> None:
    """What ``neurocompile simulate --backend lava`` uses: Lava's outputs in the simulator's SimResult."""
    from neurocompile.backends import lava as nl
    from neurocompile.sim.engine import simulate

    rng = np.random.default_rng(11)
    g = _ssm_graph(rng)
    x = rng.normal(scale=2.0, size=(5, 24, 2))
    res = nl.simulate_lava(g, x, batch=2, record=True)
    sim = simulate(g, x)
    assert res.lava_comparison.equal
    np.testing.assert_array_equal(res.predictions, sim.predictions)
    assert res.spikes == sim.spikes and res.saturations == sim.saturations
    np.testing.assert_array_equal(res.outputs["head"], sim.outputs["head"])
    assert res.counts == sim.counts and set(res.paths) == set(g.order())


@needs_lava
@pytest.mark.parametrize("batch", [None, 2])
def test_edge_delays_match_simulator(batch: int | None) -> None:
    """Edges with a delay (graph.connect(..., delay=d)) become delay-line Processes."""
    rng = np.random.default_rng(14)
    g = Graph("delays")
    g.add("x", hw.QInput(size=3, out_scale=0.05, out_bits=10))
    g.inputs = ["x"]
    for k in ("a", "b"):
        g.add(k, hw.QDense(weight=rng.integers(-60, 60, (3, 3)), bias=np.zeros(3, I), shift=np.full(3, 2, I),
                           out_bits=12), "x")
    g.add("sum", hw.QAdd(size=3, out_bits=12), "a")
    g.connect("b", "sum", "in", delay=3)
    g.add("lif", hw.QLIF(decay=1000, vth=np.array([40, 60, 80])))
    g.connect("sum", "lif", "in", delay=1)
    g.outputs = ["lif"]
    x = rng.normal(size=(3, 15, 3))
    _check(g, x, batch)
