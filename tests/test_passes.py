"""The float passes (fold, discretize, lower, binarize) and the pipeline's verification, on hand-built graphs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neurocompile.errors import InternalError, UnsupportedOpError
from neurocompile.ir import nodes as fl
from neurocompile.ir.graph import Graph
from neurocompile.ir.interpret import interpret
from neurocompile.ir.verify import check
from neurocompile.passes import binarize, discretize, fold, lower, pipeline
from neurocompile.passes.common import CompileOptions, PassContext, Precision

F32 = np.float32
RNG = np.random.default_rng(0)


def ctx(**opts) -> PassContext:
    o = CompileOptions(**opts)
    return PassContext(Precision.from_target(None, o), o)


def s4d(h: int = 2, m: int = 2, seed: int = 0, bidirectional: bool = False) -> fl.S4D:
    r = np.random.default_rng(seed)
    c = (r.standard_normal((h, m)) + 1j * r.standard_normal((h, m))).astype(np.complex64)
    return fl.S4D(log_dt=np.log(r.uniform(0.01, 0.1, h)).astype(F32), A_re=np.full((h, m), -0.5, F32),
                  A_im=(np.pi * np.arange(m) * np.ones((h, 1))).astype(F32), B=np.ones((h, m), np.complex64),
                  C=c, D=r.standard_normal(h).astype(F32), C2=c.copy() if bidirectional else np.zeros((0, 0), np.complex64))


def lif_block(h: int = 3, vth: np.ndarray | None = None, norm: fl.Norm | None = None) -> Graph:
    """input -> enc -> [norm] -> s4d -> neuron -> conv (2H) -> glu -> add(enc) -> pool -> dec."""
    g = Graph("block")
    g.add("input", fl.Input(size=1))
    g.add("enc", fl.Affine(weight=RNG.standard_normal((h, 1)).astype(F32), bias=RNG.standard_normal(h).astype(F32)),
          "input")
    src = "enc"
    if norm is not None:
        src = g.add("norm", norm, "enc")
    g.add("s4d", s4d(h, 2), src)
    g.add("neuron", fl.LIF(vth=(np.ones(h, F32) if vth is None else vth.astype(F32))), "s4d")
    g.add("conv", fl.Affine(weight=RNG.standard_normal((2 * h, h)).astype(F32), bias=RNG.standard_normal(2 * h).astype(F32)),
          "neuron")
    g.add("glu", fl.GLU(size=h), "conv")
    g.add("add", fl.Add(size=h), ["enc", "glu"])
    g.add("pool", fl.MeanPool(size=h), "add")
    g.add("dec", fl.Affine(weight=RNG.standard_normal((4, h)).astype(F32), bias=np.zeros(4, F32)), "pool")
    g.inputs, g.outputs = ["input"], ["dec"]
    return check(g)


X = RNG.uniform(0, 1, (8, 20, 1))


def same_outputs(a: Graph, b: Graph, x: np.ndarray = X, tol: float = 1e-5) -> None:
    ya, yb = interpret(a, x).logits, interpret(b, x).logits
    np.testing.assert_allclose(ya, yb, rtol=tol, atol=tol)


# ------------------------------------------------------------------------------------------------ fold
def test_fold_removes_identity_activation_and_identity_affine():
    g = Graph("id")
    g.add("input", fl.Input(size=2))
    g.add("a", fl.Affine(weight=np.array([[1, 2], [3, 4]], F32), bias=np.ones(2, F32)), "input")
    g.add("drop", fl.Activation(fn="identity", size=2), "a")
    g.add("eye", fl.Affine(weight=np.eye(2, dtype=F32), bias=np.zeros(2, F32)), "drop")
    g.add("out", fl.Activation(fn="relu", size=2), "eye")
    g.inputs, g.outputs = ["input"], ["out"]
    c = ctx()
    f = check(fold.run(g, c))
    assert "drop" not in f and "eye" not in f
    assert f.preds("out") == ["a"]
    assert c.info["passes"]["fold"]["removed_identities"] == ["drop", "eye"]
    same_outputs(g, f, RNG.standard_normal((2, 5, 2)))


def _bn(h: int, mean_zero: bool = False) -> fl.Norm:
    return fl.Norm(kind="batch", weight=RNG.uniform(0.5, 2, h).astype(F32), bias=(np.zeros(h) if mean_zero else
                   RNG.standard_normal(h)).astype(F32), mean=(np.zeros(h) if mean_zero else RNG.standard_normal(h)).astype(F32),
                   var=RNG.uniform(0.5, 2, h).astype(F32), eps=1e-5)


def test_fold_batchnorm_into_preceding_affine_is_exact():
    g = lif_block(3, norm=_bn(3))
    # the norm's input 'enc' also feeds the residual add: folding backward is illegal, forward into an S4D
    # needs a zero offset -> kept as a diagonal Affine
    c = ctx()
    f = check(fold.run(g, c))
    assert isinstance(f.node("norm"), fl.Affine) and "kept" in c.info["passes"]["fold"]["batchnorm"]["norm"]
    same_outputs(g, f)
    # a norm whose producer feeds only it folds backward into that Affine
    g2 = Graph("bn")
    g2.add("input", fl.Input(size=2))
    g2.add("a", fl.Affine(weight=RNG.standard_normal((3, 2)).astype(F32), bias=RNG.standard_normal(3).astype(F32)), "input")
    g2.add("bn", _bn(3), "a")
    g2.add("out", fl.Activation(fn="relu", size=3), "bn")
    g2.inputs, g2.outputs = ["input"], ["out"]
    f2 = check(fold.run(g2, ctx()))
    assert "bn" not in f2 and f2.preds("out") == ["a"]
    same_outputs(g2, f2, RNG.standard_normal((2, 4, 2)))


def test_fold_batchnorm_forward_into_affine_and_zero_offset_s4d():
    g = Graph("fwd")
    g.add("input", fl.Input(size=3))
    g.add("bn", _bn(3), "input")
    g.add("a", fl.Affine(weight=RNG.standard_normal((2, 3)).astype(F32), bias=np.zeros(2, F32)), "bn")
    g.inputs, g.outputs = ["input"], ["a"]
    f = check(fold.run(g, ctx()))
    assert "bn" not in f
    same_outputs(g, f, RNG.standard_normal((2, 4, 3)))
    g = Graph("s4")
    g.add("input", fl.Input(size=2))
    g.add("bn", _bn(2, mean_zero=True), "input")
    g.add("s", s4d(2, 2), "bn")
    g.inputs, g.outputs = ["input"], ["s"]
    f = check(fold.run(g, ctx()))
    assert "bn" not in f
    np.testing.assert_allclose(interpret(g, X[:, :, [0, 0]]).outputs["s"], interpret(f, X[:, :, [0, 0]]).outputs["s"],
                               rtol=1e-5, atol=1e-6)


def test_fold_thresholds_into_s4d_keeps_spikes():
    vth = np.array([0.3, 1.7, 4.0])
    g = lif_block(3, vth=vth)
    f = check(fold.run(g, ctx()))
    assert np.all(f.node("neuron").vth == 1.0)
    a = interpret(g, X, record=True).trace["neuron"]
    b = interpret(f, X, record=True).trace["neuron"]
    assert np.mean(a == b) > 0.999  # equal up to float rounding at ties
    np.testing.assert_allclose(f.node("s4d").D, g.node("s4d").D / vth, rtol=1e-6)


# ------------------------------------------------------------------------------------------------ discretize
def test_discretize_one_mode_by_hand():
    """dt = 0.5, A = -1, B = 1: dA = e^-0.5, dB = (e^-0.5 - 1) / -1 = 1 - e^-0.5."""
    g = Graph("one")
    g.add("input", fl.Input(size=1))
    g.add("s", fl.S4D(log_dt=np.array([math.log(0.5)], F32), A_re=np.array([[-1.0]], F32),
                      A_im=np.array([[0.0]], F32), B=np.array([[1 + 0j]], np.complex64),
                      C=np.array([[0.5 - 0.25j]], np.complex64), D=np.array([0.1], F32)), "input")
    g.inputs, g.outputs = ["input"], ["s"]
    d = check(discretize.run(g, ctx()))
    bank, ro = d.node("s.modes"), d.node("s")
    assert isinstance(bank, fl.ModeBank) and isinstance(ro, fl.ModeReadout)
    assert bank.dA[0, 0] == pytest.approx(math.exp(-0.5), rel=1e-6)
    assert bank.dB[0, 0] == pytest.approx(1 - math.exp(-0.5), rel=1e-6)
    assert d.preds("s", "state") == ["s.modes"] and d.preds("s", "skip") == ["input"]
    # h_0 = dB u_0; y_0 = 2 Re(C h_0) + D u_0 = 2 * 0.5 * dB + 0.1 for u_0 = 1
    y = interpret(d, np.ones((1, 3, 1))).outputs["s"]
    assert y[0, 0, 0] == pytest.approx(1 - math.exp(-0.5) + 0.1, rel=1e-6)
    np.testing.assert_allclose(interpret(g, X).outputs["s"], interpret(d, X).outputs["s"], rtol=1e-5, atol=1e-6)


def test_discretize_matches_s4d_on_a_block():
    g = lif_block(3)
    d = check(discretize.run(g, ctx()))
    same_outputs(g, d)


def test_bidirectional_s4d_is_refused_naming_the_node():
    g = Graph("bi")
    g.add("input", fl.Input(size=2))
    g.add("layer.s4d", s4d(2, 2, bidirectional=True), "input")
    g.inputs, g.outputs = ["input"], ["layer.s4d"]
    with pytest.raises(UnsupportedOpError, match=r"'layer\.s4d' is a bidirectional S4D.*buffer"):
        discretize.run(g, ctx())


# ------------------------------------------------------------------------------------------------ lower
def test_lower_glu_splits_the_affine():
    g = lif_block(3)
    low = check(lower.run(discretize.run(g, ctx()), ctx()))
    assert isinstance(low.node("glu"), fl.Mul)
    assert low.preds("glu", "a") == ["conv.a"] and low.preds("glu", "b") == ["glu.sigmoid"]
    assert low.node("glu.sigmoid").fn == "sigmoid" and low.preds("glu.sigmoid") == ["conv.b"]
    np.testing.assert_array_equal(low.node("conv.b").weight, g.node("conv").weight[3:])
    assert "conv" not in low
    same_outputs(g, low)


def test_lower_glu_without_a_private_affine_uses_selections():
    g = Graph("glu")
    g.add("input", fl.Input(size=4))
    g.add("glu", fl.GLU(size=2), "input")
    g.inputs, g.outputs = ["input"], ["glu"]
    low = check(lower.run(g, ctx()))
    x = RNG.standard_normal((2, 3, 4))
    np.testing.assert_allclose(interpret(g, x).outputs["glu"], interpret(low, x).outputs["glu"], rtol=1e-6)


def _ln_graph() -> Graph:
    g = Graph("ln")
    g.add("input", fl.Input(size=3))
    g.add("blocks.0.norm", fl.Norm(kind="layer", weight=np.ones(3, F32), bias=np.zeros(3, F32),
                                   mean=np.zeros(0, F32), var=np.zeros(0, F32)), "input")
    g.inputs, g.outputs = ["input"], ["blocks.0.norm"]
    return g


def test_layernorm_refused_with_node_and_option():
    with pytest.raises(UnsupportedOpError, match=r"'blocks\.0\.norm' is a LayerNorm.*layernorm='freeze'"):
        lower.run(_ln_graph(), ctx(layernorm="refuse"))


def test_layernorm_kept_by_default_for_the_integer_form():
    c = ctx()
    low = check(lower.run(_ln_graph(), c))
    n = low.node("blocks.0.norm")
    assert isinstance(n, fl.Norm) and n.kind == "layer"
    assert c.info["passes"]["lower"]["integer_layernorm"] == ["blocks.0.norm"]


def test_layernorm_freeze_is_a_diagonal_affine():
    x = RNG.standard_normal((4, 6, 3)) * 2 + 1
    c = ctx(layernorm="freeze")
    c.calib_x = x
    with pytest.warns(UserWarning, match="frozen"):
        low = check(lower.run(_ln_graph(), c))
    n = low.node("blocks.0.norm")
    assert isinstance(n, fl.Affine) and np.count_nonzero(n.weight - np.diag(np.diag(n.weight))) == 0


# ------------------------------------------------------------------------------------------------ binarize
def test_binarize_ternary_rows_and_skips_io():
    g = lower.run(discretize.run(lif_block(3), ctx()), ctx())
    c = ctx(weights="ternary")
    t = check(binarize.run(g, c))
    assert sorted(c.info["passes"]["binarize"]["layers"]) == ["conv.a", "conv.b"]
    for name in ("conv.a", "conv.b"):
        w = t.node(name).weight
        for row in np.abs(w):
            nz = row[row > 0]
            assert nz.size and np.allclose(nz, nz[0])
    np.testing.assert_array_equal(t.node("enc").weight, g.node("enc").weight)
    b = binarize.run(g, ctx(weights="binary"))
    assert np.all(np.abs(b.node("conv.a").weight) > 0)


def test_binarize_alpha_minimises_error_for_its_support():
    w = np.array([[0.9, -1.1, 0.05, 0.0]])
    t = binarize.ternarize_rows(w)
    np.testing.assert_allclose(t, [[1.0, -1.0, 0.0, 0.0]])


# ------------------------------------------------------------------------------------------------ pipeline
def test_pipeline_lists_passes_in_order():
    assert [p.NAME for p in pipeline.PASSES] == ["fold", "discretize", "lower", "binarize", "calibrate", "quantize"]


def test_pipeline_verifies_after_every_pass(monkeypatch):
    def broken(graph, ctx):
        g = graph.copy()
        g.outputs = ["nowhere"]
        return g

    monkeypatch.setattr(fold, "run", broken)
    with pytest.raises(InternalError, match="after pass 'fold'"):
        pipeline.lower_graph(lif_block(3))


def test_print_ir_after_each_pass(capsys):
    pipeline.lower_graph(lif_block(3), options=CompileOptions(print_ir=True))
    out = capsys.readouterr().out
    for name in ("fold", "discretize", "lower", "binarize"):
        assert f"--- IR after {name} ---" in out
    assert "ModeBank" in out
