"""The vectorised engine equals the reference runner (sim/reference.py, docs/semantics.md as a plain loop) bit for
bit: on a graph holding every integer node type (delays included) and on every shipped sdigits model exported to
loihi2; the passes' runner is the reference runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from int_graphs import H, every_node_graph, token_graph

from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.passes._intrun import run_int
from neurocompile.sim import reference
from neurocompile.sim.engine import simulate

ROOT = Path(__file__).resolve().parents[1]


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
