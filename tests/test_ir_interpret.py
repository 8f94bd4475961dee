"""Float interpreter: every node against an independent definition (hand values, PyTorch modules)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_ir_verify import float_graph

from neurocompile.errors import IRError
from neurocompile.ir import hw
from neurocompile.ir import nodes as fl
from neurocompile.ir.graph import Graph
from neurocompile.ir.interpret import interpret, s4d_discretize


def one_node(node: fl.Node, size: int, tokens: bool = False, vocab: int = 0) -> Graph:
    g = Graph("one")
    g.add("x", fl.Input(size=size, tokens=tokens, vocab=vocab))
    g.add("n", node, "x")
    g.inputs, g.outputs = ["x"], ["n"]
    return g


def run(node, x, **kw):
    return interpret(one_node(node, x.shape[-1] if x.ndim == 3 else 1, **kw), x).outputs["n"]


def s4d_pair(bidirectional=False, seed=0):
    from neurocompile.models.s4d import S4D

    torch.manual_seed(seed)
    m = S4D(6, 8, bidirectional=bidirectional)
    with torch.no_grad():
        m.log_dt.uniform_(math.log(0.01), math.log(0.5))
        m.B.normal_()
    C = torch.view_as_complex(m.C.detach()).numpy()
    node = fl.S4D(log_dt=m.log_dt.detach().numpy(), A_re=(-torch.exp(m.log_A_real)).detach().numpy(),
                  A_im=m.A_imag.detach().numpy(), B=torch.view_as_complex(m.B.detach()).numpy(),
                  C=C[0] if bidirectional else C, D=m.D.detach().numpy(),
                  C2=C[1] if bidirectional else np.zeros((0, 0), np.complex64))
    return m, node


@pytest.mark.parametrize("bidirectional", [False, True])
def test_s4d_matches_reference_layer(bidirectional):
    m, node = s4d_pair(bidirectional)
    u = torch.randn(3, 40, 6)
    with torch.no_grad():
        fft = m(u).double().numpy()
        m64 = m.double()
        rec = m64.forward_recurrent(u.double()).numpy()
    got = run(node, u.numpy())
    assert np.abs(got - rec).max() < 1e-9 * max(1, np.abs(rec).max()) * 1e3  # float64 vs float64 recurrence
    assert np.abs(got - fft).max() < 1e-4 * np.abs(fft).max()


def test_modebank_readout_equal_s4d():
    _, node = s4d_pair()
    dA, dB = s4d_discretize(node)
    g = Graph("modes")
    g.add("x", fl.Input(size=6))
    g.add("bank", fl.ModeBank(dA=dA.astype(np.complex64), dB=dB.astype(np.complex64)), "x")
    g.add("read", fl.ModeReadout(C=node.C, D=node.D), {"state": ["bank"], "skip": ["x"]})
    g.inputs, g.outputs = ["x"], ["read"]
    u = np.random.default_rng(0).normal(size=(2, 30, 6))
    want = run(node, u)
    got = interpret(g, u).outputs["read"]
    assert np.abs(got - want).max() < 1e-5 * np.abs(want).max()  # dA/dB rounded to complex64


def test_lif_hand_values_and_compare():
    x = np.array([0.6, 0.6, 0.6, 0.0, 1.0, 1.0])[None, :, None]
    lif = fl.LIF(tau=0.5, vth=np.ones(1, np.float32))
    # v' = 0.6, 0.9, 1.05 (spike, reset 0), 0, 1.0 (spike at >=), 1.0 (spike)
    assert run(lif, x)[0, :, 0].tolist() == [0, 0, 1, 0, 1, 1]
    lif.compare = ">"
    # v' = 0.6, 0.9, 1.05 (spike), 0, 1.0 (no), 1.5 (spike)
    assert run(lif, x)[0, :, 0].tolist() == [0, 0, 1, 0, 0, 1]
    lif.compare, lif.reset = ">=", "subtract"
    # v' = 0.6, 0.9, 1.05 (spike, v=0.05), 0.025, 1.0125 (spike, 0.0125), 1.00625 (spike)
    assert run(lif, x)[0, :, 0].tolist() == [0, 0, 1, 0, 1, 1]


def test_lif_records_membrane():
    x = np.array([0.6, 0.6, 0.6])[None, :, None]
    g = one_node(fl.LIF(tau=0.5, vth=np.ones(1, np.float32)), 1)
    res = interpret(g, x, record=True, record_state=True)
    assert np.allclose(res.state["n"][0, :, 0], [0.6, 0.9, 1.05])
    assert res.trace["n"].shape == (1, 3, 1)


def test_refractory_matches_model_neuron():
    from neurocompile.models.neurons import RefractoryLIF

    torch.manual_seed(0)
    m = RefractoryLIF(5, tau=0.25, lam=0.7).double()
    with torch.no_grad():
        m.ln_vth.uniform_(-0.5, 0.5)
        m.ln_rho.uniform_(-1, 0.5)
    y = torch.randn(2, 50, 5, dtype=torch.float64) * 1.5
    with torch.no_grad():
        want = m.forward_exact(y).numpy()
    vth = torch.exp(m.ln_vth).detach()
    node = fl.RefractoryLIF(tau=0.25, lam=0.7, vth=vth.numpy().astype(np.float32),
                            rho=(vth * torch.exp(m.ln_rho)).detach().numpy().astype(np.float32))
    got = run(node, y.numpy())
    assert (got != want).mean() < 0.01  # float32 parameters: only threshold ties may differ
    assert got.sum() > 10


def test_stateless_nodes():
    x = np.array([[[-2.0, 0.0, 0.1, 3.0]]])
    assert run(fl.Heaviside(vth=np.zeros(4, np.float32)), x)[0, 0].tolist() == [0, 0, 1, 1]
    assert run(fl.Heaviside(vth=np.zeros(4, np.float32), compare=">="), x)[0, 0].tolist() == [0, 1, 1, 1]
    assert run(fl.Ternarize(size=4, threshold=0.15), x)[0, 0].tolist() == [-1, 0, 0, 1]
    assert run(fl.Ternarize(size=4), np.zeros((1, 1, 4)))[0, 0].tolist() == [0, 0, 0, 0]
    glu = run(fl.GLU(size=2), x)[0, 0]
    assert np.allclose(glu, [-2.0 / (1 + math.exp(-0.1)), 0.0])
    for fn, ref in (("sigmoid", torch.sigmoid), ("gelu", torch.nn.functional.gelu), ("relu", torch.relu),
                    ("identity", lambda t: t)):
        got = run(fl.Activation(fn=fn, size=4), x)
        assert np.allclose(got, ref(torch.from_numpy(x)).numpy(), atol=1e-12), fn
    g = Graph("mul")
    g.add("x", fl.Input(size=4))
    g.add("a", fl.Activation(fn="identity", size=4), "x")
    g.add("b", fl.Activation(fn="relu", size=4), "x")
    g.add("n", fl.Mul(size=4), {"a": ["a"], "b": ["b"]})
    g.inputs, g.outputs = ["x"], ["n"]
    assert np.allclose(interpret(g, x).outputs["n"], x * np.maximum(x, 0))
    aff = fl.Affine(weight=np.arange(8, dtype=np.float32).reshape(2, 4), bias=np.array([1, -1], np.float32))
    assert np.allclose(run(aff, x)[0, 0], np.arange(8).reshape(2, 4) @ x[0, 0] + [1, -1])


def test_norms_match_torch():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 6))
    w, b = rng.normal(size=6).astype(np.float32), rng.normal(size=6).astype(np.float32)
    ln = torch.nn.LayerNorm(6).double()
    with torch.no_grad():
        ln.weight.copy_(torch.from_numpy(w))
        ln.bias.copy_(torch.from_numpy(b))
        want = ln(torch.from_numpy(x)).numpy()
    got = run(fl.Norm(kind="layer", weight=w, bias=b, mean=np.zeros(0, np.float32), var=np.zeros(0, np.float32)), x)
    assert np.abs(got - want).max() < 1e-6
    mean, var = rng.normal(size=6).astype(np.float32), rng.uniform(0.5, 2, size=6).astype(np.float32)
    bn = torch.nn.BatchNorm1d(6).double().eval()
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(w))
        bn.bias.copy_(torch.from_numpy(b))
        bn.running_mean.copy_(torch.from_numpy(mean))
        bn.running_var.copy_(torch.from_numpy(var))
        want = bn(torch.from_numpy(x).transpose(1, 2)).transpose(1, 2).numpy()
    got = run(fl.Norm(kind="batch", weight=w, bias=b, mean=mean, var=var), x)
    assert np.abs(got - want).max() < 1e-6


def test_embedding_tokens_and_range():
    emb = fl.Embedding(weight=np.arange(12, dtype=np.float32).reshape(4, 3))
    g = one_node(emb, 1, tokens=True, vocab=4)
    out = interpret(g, np.array([[0, 3, 1]])).outputs["n"]
    assert out.shape == (1, 3, 3) and out[0, 1].tolist() == [9, 10, 11]
    with pytest.raises(IRError, match="token id 7"):
        interpret(g, np.array([[0, 7]]))


def test_meanpool_sequence_end_and_residual():
    g = float_graph()
    x = np.random.default_rng(0).uniform(size=(3, 20, 1))
    res = interpret(g, x, record=True)
    assert res.logits.shape == (3, 3)
    assert res.trace["pool"].shape == (3, 1, 4) and res.trace["add"].shape == (3, 20, 4)
    assert np.allclose(res.trace["pool"][:, 0], res.trace["add"].mean(axis=1))
    assert np.allclose(res.trace["add"], res.trace["encoder"] + res.trace["glu"])
    d = g.node("decoder")
    assert np.allclose(res.logits, res.trace["pool"][:, 0] @ d.weight.T.astype(np.float64) + d.bias)


def test_edge_delay_shifts():
    g = Graph("delay")
    g.add("x", fl.Input(size=1))
    g.add("a", fl.Activation(fn="identity", size=1))
    g.connect("x", "a", delay=2)
    g.inputs, g.outputs = ["x"], ["a"]
    out = interpret(g, np.arange(1, 6, dtype=float)[None, :, None]).outputs["a"]
    assert out[0, :, 0].tolist() == [0, 0, 1, 2, 3]


def test_errors():
    g = float_graph()
    with pytest.raises(IRError, match=r"takes \[B, T, 1\]"):
        interpret(g, np.zeros((2, 5, 3)))
    with pytest.raises(IRError, match="NaN"):
        interpret(g, np.full((1, 5, 1), np.nan))
    q = Graph("q")
    q.add("x", hw.QInput(size=1))
    q.inputs, q.outputs = ["x"], ["x"]
    with pytest.raises(IRError, match="neurocompile.sim"):
        interpret(q, np.zeros((1, 2, 1)))
