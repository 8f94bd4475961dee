"""NIR interop: round trip, refusal of SSM models, and a hand-built NIR graph with hand-computed spikes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

nir = pytest.importorskip("nir")

from neurocompile.errors import UnsupportedOpError
from neurocompile.interop.nir import from_nir, read_nir, to_nir, write_nir
from neurocompile.ir import nodes as fl
from neurocompile.ir.graph import Graph
from neurocompile.ir.interpret import interpret

ROOT = Path(__file__).resolve().parents[1]


def _snn() -> Graph:
    rng = np.random.default_rng(1)
    g = Graph("snn")
    g.add("input", fl.Input(size=3))
    g.add("fc1", fl.Affine(weight=rng.normal(size=(8, 3)).astype(np.float32), bias=np.full(8, 0.1, np.float32)),
          "input")
    g.add("lif1", fl.LIF(tau=0.125, vth=np.full(8, 0.5, np.float32)), "fc1")
    g.add("skip", fl.Affine(weight=rng.normal(size=(8, 3)).astype(np.float32), bias=np.zeros(8, np.float32)),
          "input")
    g.add("add", fl.Add(size=8), ["lif1", "skip"])
    g.add("fc2", fl.Affine(weight=rng.normal(size=(4, 8)).astype(np.float32), bias=np.zeros(4, np.float32)), "add")
    g.add("spk", fl.Heaviside(vth=np.zeros(4, np.float32), compare=">"), "fc2")
    g.add("lif2", fl.LIF(tau=0.5, vth=np.full(4, 0.3, np.float32), compare=">="), "fc2")
    g.inputs, g.outputs = ["input"], ["lif2", "spk"]
    return g


def test_round_trip_reproduces_interpreter(tmp_path: Path) -> None:
    g = _snn()
    x = np.random.default_rng(2).normal(size=(5, 20, 3))
    ref = interpret(g, x)
    ng = to_nir(g)
    assert isinstance(ng.nodes["lif1"], nir.LIF) and isinstance(ng.nodes["spk"], nir.Threshold)
    assert np.allclose(ng.nodes["lif1"].tau, 1e-4 / (1 - 0.125))
    back = from_nir(ng)
    out = interpret(back, x)
    for a, b in zip(ref.outputs.values(), out.outputs.values()):
        assert np.array_equal(a, b)
    assert ref.outputs["lif2"].any() and not ref.outputs["lif2"].all()
    # through the file format too
    back2 = read_nir(write_nir(g, tmp_path / "snn.nir"))
    for a, b in zip(ref.outputs.values(), interpret(back2, x).outputs.values()):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("ckpt", ["spikingssm_sdigits.pt", "binary_s4d_sdigits.pt"])
def test_ssm_model_is_refused_clearly(ckpt: str, tmp_path: Path) -> None:
    from neurocompile.frontend import load_model, trace
    from neurocompile.passes.pipeline import lower_graph

    raw = trace(load_model(ROOT / "examples" / "checkpoints" / ckpt))
    for g in (raw, lower_graph(raw.copy())):
        with pytest.raises(UnsupportedOpError, match=r"'blocks.0.s4d.*no diagonal-SSM"):
            write_nir(g, tmp_path / "m.nir")
    assert not (tmp_path / "m.nir").exists()


def test_subtract_reset_refused() -> None:
    g = Graph("g")
    g.add("input", fl.Input(size=2))
    g.add("lif", fl.LIF(tau=0.5, vth=np.ones(2, np.float32), reset="subtract"), "input")
    g.inputs, g.outputs = ["input"], ["lif"]
    with pytest.raises(UnsupportedOpError, match=r"'lif' \(LIF\).*subtract"):
        to_nir(g)


def test_hand_built_nir_graph() -> None:
    """Input(2) -> Linear(I) -> LIF(tau=2e-4 s, R=2: decay 0.5, input x1) -> Output, and an LI readout."""
    dt = 1e-4
    ng = nir.NIRGraph(
        nodes={
            "in": nir.Input(input_type=np.array([2])),
            "lin": nir.Linear(weight=np.eye(2, dtype=np.float32)),
            "lif": nir.LIF(tau=np.full(2, 2e-4), r=np.full(2, 2.0), v_leak=np.zeros(2), v_threshold=np.ones(2)),
            "li": nir.LI(tau=np.full(2, 2e-4), r=np.full(2, 2.0), v_leak=np.zeros(2)),
            "out": nir.Output(output_type=np.array([2])),
            "out_li": nir.Output(output_type=np.array([2])),
        },
        edges=[("in", "lin"), ("lin", "lif"), ("lif", "out"), ("lin", "li"), ("li", "out_li")],
    )
    g = from_nir(ng, dt=dt)
    x = np.array([[[0.6, 1.0]] * 4])  # [1, 4, 2]
    res = interpret(g, x)
    # channel 0: v = 0.6, 0.9, 1.05 (spike, reset), 0.6; channel 1: 1.0 (not > 1), 1.5 (spike), 1.0, 1.5 (spike)
    assert np.array_equal(res.outputs["lif"][0], [[0, 0], [0, 1], [1, 0], [0, 1]])
    # LI: v_t = 0.5 v + 0.5 * 2 * x -> 0.6, 0.9, 1.05, 1.125 for x = 0.6
    assert np.allclose(res.outputs["li"][0, :, 0], [0.6, 0.9, 1.05, 1.125])


def test_hand_built_cubalif() -> None:
    dt = 1e-4
    ng = nir.NIRGraph(
        nodes={
            "in": nir.Input(input_type=np.array([1])),
            "cuba": nir.CubaLIF(tau_syn=np.full(1, 2e-4), tau_mem=np.full(1, 2e-4), r=np.full(1, 2.0),
                                v_leak=np.zeros(1), v_threshold=np.full(1, 1.0)),
            "out": nir.Output(output_type=np.array([1])),
        },
        edges=[("in", "cuba"), ("cuba", "out")],
    )
    g = from_nir(ng, dt=dt)
    res = interpret(g, np.ones((1, 5, 1)))
    # I = 0.5, 0.75, 0.875, 0.9375, 0.96875; v = 0.5 v + I -> 0.5, 1.0, 1.375 (spike), 0.9375, 1.4375 (spike)
    assert np.array_equal(res.outputs["cuba"][0, :, 0], [0, 0, 1, 0, 1])


def test_unsupported_nir_node_named() -> None:
    ng = nir.NIRGraph(
        nodes={"in": nir.Input(input_type=np.array([2])),
               "lif": nir.LIF(tau=np.full(2, 2e-4), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2),
                              v_reset=np.full(2, -0.5)),
               "out": nir.Output(output_type=np.array([2]))},
        edges=[("in", "lif"), ("lif", "out")],
    )
    with pytest.raises(UnsupportedOpError, match=r"NIR node 'lif' \(LIF\): v_reset"):
        from_nir(ng)
