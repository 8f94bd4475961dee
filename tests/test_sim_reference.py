"""The vectorised engine equals the reference runner (sim/reference.py, docs/semantics.md as a plain loop) bit for
bit: on a graph holding every integer node type (delays included) and on every shipped sdigits model exported to
loihi2; the passes' runner is the reference runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.passes._intrun import run_int
from neurocompile.sim import reference
from neurocompile.sim.engine import simulate

ROOT = Path(__file__).resolve().parents[1]
H = 4


def _w(rng: np.random.Generator, *shape: int, lim: int = 100) -> np.ndarray:
    return rng.integers(-lim, lim + 1, shape).astype(np.int64)


def every_node_graph(seed: int = 0) -> Graph:
    """One graph with every integer node type but QEmbedding (see token_graph), an edge delay and a dense delay."""
    rng = np.random.default_rng(seed)
    z = np.zeros(H, np.int64)
    g = Graph("every-node")
    g.add("x", hw.QInput(size=3, out_bits=8, out_scale=0.02))
    g.add("d1", hw.QDense(weight=_w(rng, H, 3), bias=_w(rng, H), shift=np.full(H, 3, np.int64), out_bits=12), "x")
    g.add("bank", hw.QModeBank(a_re=rng.integers(2000, 4000, (H, 2)), a_im=_w(rng, H, 2, lim=900),
                               b_re=_w(rng, H, 2), b_im=_w(rng, H, 2), b_shift=np.full(H, 2, np.int64),
                               out_bits=16), "d1")
    g.add("ro", hw.QModeReadout(c_re=_w(rng, H, 2), c_im=_w(rng, H, 2), d=_w(rng, H),
                                shift=np.full(H, 8, np.int64), out_bits=12), {"state": ["bank"], "skip": ["d1"]})
    g.add("lif", hw.QLIF(vth=np.full(H, 300, np.int64), reset="subtract", state_bits=16), "ro")
    g.add("hv", hw.QHeaviside(vth=z.copy()), "ro")
    g.add("ref", hw.QRefractory(vth=np.full(H, 200, np.int64), rho=np.full(H, 50, np.int64), state_bits=16), "ro")
    g.add("syn", hw.QDense(weight=_w(rng, H, H), bias=z.copy(), shift=z.copy(), rounding="floor", delay=1,
                           out_bits=16), "ro")
    g.add("llif", hw.QLavaLIF(du=3000, dv=400, vth=np.full(H, 40, np.int64), bias_mant=_w(rng, H),
                              bias_exp=np.zeros(H, np.int64), state_bits=24), "syn")
    g.add("lut", hw.QLUT(table=_w(rng, 64, lim=127), in_shift=4, offset=32, size=H, out_bits=8), "ro")
    g.add("mul", hw.QMul(shift=4, size=H, out_bits=12), {"a": ["lut"], "b": ["ro"]})
    g.add("tern", hw.QTernarize(size=H), "mul")
    r_bits, l_bits = 12, 4
    table = np.array([0] + [round(2 ** r_bits / np.sqrt(i)) for i in range(1, (1 << l_bits) + 1)], np.int64)
    g.add("ln", hw.QLayerNorm(size=H, mean_mul=1, mean_shift=2, index_bits=l_bits, rsqrt_frac_bits=r_bits,
                              rsqrt_table=table, weight=_w(rng, H), bias=_w(rng, H), shift=np.full(H, 12, np.int64),
                              out_bits=10), "mul")
    g.add("add", hw.QAdd(size=H, out_bits=12), ["lif", "hv", "ref", "llif", "tern"])
    g.connect("ln", "add", delay=2)
    g.add("acc", hw.QAccumulate(size=H, out_bits=20), "add")
    g.add("out", hw.QDense(weight=_w(rng, 3, H), bias=np.zeros(3, np.int64), shift=np.zeros(3, np.int64),
                           out_bits=0), "acc")
    g.inputs, g.outputs = ["x"], ["out"]
    return g


def token_graph(seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph("tokens")
    g.add("tok", hw.QInput(size=1, tokens=True, vocab=5, out_bits=0))
    g.add("emb", hw.QEmbedding(table=_w(rng, 5, H), out_bits=8), "tok")
    g.add("out", hw.QDense(weight=_w(rng, 2, H), bias=np.zeros(2, np.int64), shift=np.ones(2, np.int64),
                           out_bits=16), "emb")
    g.inputs, g.outputs = ["tok"], ["out"]
    return g


def assert_engine_equals_reference(g: Graph, x: np.ndarray, ariths: tuple[str, ...] = ("auto", "int64")) -> None:
    ref = reference.run(g, x, record=True)
    for arith in ariths:
        r = simulate(g, x, record=True, counters=False, arith=arith)
        assert set(r.trace) == set(ref.trace), arith
        for k, v in ref.trace.items():
            assert np.array_equal(r.trace[k], v), (arith, k)
        for k, v in ref.outputs.items():
            assert np.array_equal(r.outputs[k], v), (arith, k)
        for k, d in (r.final_states or {}).items():
            for sk, v in d.items():
                assert np.array_equal(np.asarray(v).reshape(ref.states[k][sk].shape), ref.states[k][sk]), (k, sk)
        assert {k: v for k, v in r.saturations.items() if v} == {k: v for k, v in ref.saturations.items() if v}


def test_every_integer_node_type_is_covered() -> None:
    """A new node type must join the graphs below (or this test), so the engine is checked on it."""
    seen = {type(n).__name__ for g in (every_node_graph(), token_graph()) for _, n in g.items()}
    assert seen == set(hw.INT_NODES)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_engine_equals_reference_on_every_node_type(seed: int) -> None:
    rng = np.random.default_rng(seed)
    assert_engine_equals_reference(every_node_graph(seed), rng.normal(0, 1.5, (5, 12, 3)),
                                   ("auto", "int64", "reference"))
    assert_engine_equals_reference(token_graph(seed), rng.integers(0, 5, (4, 7)))


def test_reference_honours_edge_and_dense_delays() -> None:
    """An edge of delay d delivers its source's output of step t - d (zeros before)."""
    g = every_node_graph()
    r = reference.run(g, np.random.default_rng(3).normal(0, 1, (2, 6, 3)), record=True)
    g2 = every_node_graph()
    g2.g.edges["ln", "add"]["delay"] = 0
    r2 = reference.run(g2, np.random.default_rng(3).normal(0, 1, (2, 6, 3)), record=True)
    assert np.array_equal(r.trace["ln"], r2.trace["ln"])
    assert not np.array_equal(r.trace["add"], r2.trace["add"])
    assert r.states["syn"]["pipe"].shape == (2, 1, H)


def test_passes_runner_is_the_reference_runner() -> None:
    g = every_node_graph()
    x = np.random.default_rng(4).normal(0, 1, (3, 5, 3))
    a, b = run_int(g, x, record=True), reference.run(g, x, record=True)
    assert np.array_equal(a.outputs["out"], b.outputs["out"])
    assert np.array_equal(a.trace["acc"][:, 0], b.final["acc"])
    assert a.saturations == b.saturations


SHIPPED = sorted((ROOT / "examples" / "checkpoints").glob("*sdigits*.pt"))


@pytest.mark.parametrize("ckpt", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_engine_equals_reference_on_shipped_models(ckpt: Path) -> None:
    from neurocompile.api import _load
    from neurocompile.datasets import load_dataset
    from neurocompile.frontend import trace
    from neurocompile.passes.pipeline import CompileOptions, compile_graph
    from neurocompile.target import load_target

    ds = load_dataset("sdigits", split="train")
    g, _ = compile_graph(trace(_load(ckpt, False, None, None)), load_target("loihi2"), ds.x[:32], CompileOptions())
    assert_engine_equals_reference(g, load_dataset("sdigits", split="test").x[:6])
