"""Verifier: a valid graph passes; each hand-broken graph is rejected with the right rule (all rules reported)."""

from __future__ import annotations

import numpy as np
import pytest

from neurocompile.errors import IRError
from neurocompile.ir import hw
from neurocompile.ir import nodes as fl
from neurocompile.ir.graph import Graph
from neurocompile.ir.verify import RULES, check, input_sizes, verify

H, M, C = 4, 2, 3


def float_graph() -> Graph:
    rng = np.random.default_rng(0)
    g = Graph("tiny")
    g.add("input", fl.Input(size=1))
    g.add("encoder", fl.Affine(weight=rng.normal(size=(H, 1)).astype(np.float32), bias=np.zeros(H, np.float32)),
          "input")
    g.add("s4d", fl.S4D(log_dt=np.full(H, -3.0, np.float32), A_re=np.full((H, M), -0.5, np.float32),
                        A_im=np.tile(np.pi * np.arange(M, dtype=np.float32), (H, 1)),
                        B=np.ones((H, M), np.complex64), C=(rng.normal(size=(H, M)) + 0j).astype(np.complex64),
                        D=np.ones(H, np.float32)), "encoder")
    g.add("lif", fl.LIF(vth=np.ones(H, np.float32)), "s4d")
    g.add("conv", fl.Affine(weight=rng.normal(size=(2 * H, H)).astype(np.float32),
                            bias=np.zeros(2 * H, np.float32)), "lif")
    g.add("glu", fl.GLU(size=H), "conv")
    g.add("add", fl.Add(size=H), ["encoder", "glu"])
    g.add("pool", fl.MeanPool(size=H), "add")
    g.add("decoder", fl.Affine(weight=rng.normal(size=(C, H)).astype(np.float32), bias=np.zeros(C, np.float32)),
          "pool")
    g.inputs, g.outputs = ["input"], ["decoder"]
    return g


def int_graph() -> Graph:
    g = Graph("qtiny")
    g.add("input", hw.QInput(size=1, out_bits=8))
    g.add("dense", hw.QDense(weight=np.array([[3], [-5]], np.int64), bias=np.zeros(2, np.int64),
                             shift=np.zeros(2, np.int64), weight_bits=8, out_bits=16), "input")
    g.add("bank", hw.QModeBank(a_re=np.full((2, 1), 3000, np.int64), a_im=np.full((2, 1), 100, np.int64),
                               b_re=np.ones((2, 1), np.int64), b_im=np.zeros((2, 1), np.int64),
                               b_shift=np.zeros(2, np.int64)), "dense")
    g.add("read", hw.QModeReadout(c_re=np.ones((2, 1), np.int64), c_im=np.ones((2, 1), np.int64),
                                  d=np.ones(2, np.int64), shift=np.zeros(2, np.int64)),
          {"state": ["bank"], "skip": ["dense"]})
    g.add("lif", hw.QLIF(vth=np.full(2, 100, np.int64)), "read")
    g.add("acc", hw.QAccumulate(size=2), "lif")
    g.add("out", hw.QDense(weight=np.ones((3, 2), np.int64), bias=np.zeros(3, np.int64),
                           shift=np.zeros(3, np.int64), out_bits=0), "acc")
    g.inputs, g.outputs = ["input"], ["out"]
    return g


def test_valid_graphs_pass():
    assert verify(float_graph()) == []
    assert verify(int_graph()) == []
    assert check(float_graph()).name == "tiny"


def _dangling_edge(g):
    g.g.add_edge("glu", "ghost", port="in", delay=0, order=0)


def _wrong_size(g):
    g.node("conv").weight = np.zeros((2 * H, H + 1), np.float32)


def _unknown_port(g):
    g.g.edges["lif", "conv"]["port"] = "gate"


def _cycle(g):
    g.connect("glu", "s4d")


def _nan_weight(g):
    g.node("encoder").weight[0, 0] = np.nan


def _inf_attr(g):
    g.node("lif").tau = float("inf")


def _missing_input(g):
    g.inputs = []


def _input_not_listed(g):
    g.add("input2", fl.Input(size=1))
    g.connect("input2", "encoder")


def _unconnected_port(g):
    g.g.remove_edge("lif", "conv")


def _unknown_node_type(g):
    class Weird(fl.Node):
        def out_size(self):
            return H

    g.replace("glu", Weird())


def _wrong_dtype(g):
    g.node("decoder").weight = g.node("decoder").weight.astype(np.float64)


def _bad_enum(g):
    g.node("lif").compare = "=>"


def _missing_output(g):
    g.outputs = ["nowhere"]


def _dead_node(g):
    g.add("extra", fl.Activation(fn="relu", size=H), "glu")


def _unreachable(g):
    g.add("orphan_in", fl.Affine(weight=np.zeros((H, H), np.float32), bias=np.zeros(H, np.float32)))
    g.connect("orphan_in", "add")


def _shape_mismatch(g):
    g.node("s4d").C = np.zeros((H, M + 1), np.complex64)


def _seq_end_mix(g):
    g.connect("glu", "decoder", port="in")


def _negative_delay(g):
    g.g.edges["lif", "conv"]["delay"] = -1


BROKEN = [
    ("dangling edge", _dangling_edge, "dangling-edge"),
    ("wrong size", _wrong_size, "size"),
    ("unknown port", _unknown_port, "port"),
    ("cycle", _cycle, "cycle"),
    ("NaN weight", _nan_weight, "finite"),
    ("Inf attribute", _inf_attr, "attr"),
    ("missing input", _missing_input, "io"),
    ("input not listed", _input_not_listed, "io"),
    ("unconnected port", _unconnected_port, "unconnected"),
    ("unknown node type", _unknown_node_type, "node-type"),
    ("float64 weight", _wrong_dtype, "dtype"),
    ("bad enum value", _bad_enum, "attr"),
    ("missing output", _missing_output, "io"),
    ("dead node", _dead_node, "dead"),
    ("unreachable node", _unreachable, "unreachable"),
    ("array shapes disagree", _shape_mismatch, "shape"),
    ("per-step input after sequence end", _seq_end_mix, "sequence-end"),
    ("negative delay", _negative_delay, "delay"),
]


@pytest.mark.parametrize("label,breaker,rule", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_float_graph_rejected(label, breaker, rule):
    g = float_graph()
    breaker(g)
    violations = verify(g)
    assert rule in {v.rule for v in violations}, (label, violations)
    with pytest.raises(IRError) as exc:
        check(g)
    assert f"[{rule}]" in str(exc.value)
    assert exc.value.violations == violations
    assert "\n" not in str(exc.value)  # one line for the CLI


def _int_out_of_range(g):
    g.node("dense").weight[0, 0] = 300  # 8-bit weights: |w| <= 127


def _int_float_array(g):
    g.node("dense").bias = np.zeros(2, np.float32)


def _int_decay_too_big(g):
    g.node("lif").decay = 5000  # > 2^12


def _int_rotation_too_big(g):
    g.node("bank").a_re[0, 0] = 4097


def _int_vth_out_of_state(g):
    g.node("lif").vth[0] = 1 << 30  # state_bits 24


INT_BROKEN = [
    ("weight out of range", _int_out_of_range, "range"),
    ("float array in integer node", _int_float_array, "dtype"),
    ("decay above unity", _int_decay_too_big, "range"),
    ("rotation above unity", _int_rotation_too_big, "range"),
    ("threshold beyond state width", _int_vth_out_of_state, "range"),
]


@pytest.mark.parametrize("label,breaker,rule", INT_BROKEN, ids=[b[0] for b in INT_BROKEN])
def test_broken_int_graph_rejected(label, breaker, rule):
    g = int_graph()
    breaker(g)
    assert rule in {v.rule for v in verify(g)}, label


def test_all_violations_listed_at_once():
    g = float_graph()
    _nan_weight(g)
    _bad_enum(g)
    _dead_node(g)
    rules = {v.rule for v in verify(g)}
    assert {"finite", "attr", "dead"} <= rules
    with pytest.raises(IRError, match="3 violation"):
        check(g)


def test_rules_documented():
    import neurocompile.ir.verify as mod

    for rule in RULES:
        assert f"``{rule}``" in mod.__doc__


def test_input_sizes_modereadout_state():
    ro = fl.ModeReadout(C=np.zeros((H, M), np.complex64), D=np.zeros(H, np.float32))
    assert input_sizes(ro) == {"state": H * M * 2, "skip": H}
    assert input_sizes(fl.GLU(size=3)) == {"in": 6}


def test_modebank_readout_sizes_checked():
    g = Graph("modes")
    g.add("input", fl.Input(size=H))
    g.add("bank", fl.ModeBank(dA=np.full((H, M), 0.9, np.complex64), dB=np.ones((H, M), np.complex64)), "input")
    g.add("read", fl.ModeReadout(C=np.ones((H, M), np.complex64), D=np.ones(H, np.float32)),
          {"state": ["bank"], "skip": ["input"]})
    g.inputs, g.outputs = ["input"], ["read"]
    assert verify(g) == []
    g.node("read").C = np.ones((H, M + 1), np.complex64)
    g.node("read").D = np.ones(H, np.float32)
    assert "size" in {v.rule for v in verify(g)}
