"""Calibration, quantisation, design-rule checks and the quantisation report, on hand-computable graphs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neurocompile.errors import NeurocompileError, QuantizationError
from neurocompile.ir import hw
from neurocompile.ir import nodes as fl
from neurocompile.ir.graph import Graph
from neurocompile.ir.interpret import interpret, sigmoid
from neurocompile.ir.verify import check
from neurocompile.passes import calibrate, checks, qmath
from neurocompile.passes._intrun import run_int
from neurocompile.passes.common import CompileOptions, Precision
from neurocompile.passes.pipeline import compile_graph
from neurocompile.passes.report import quant_report, render_quant_report
from neurocompile.target import load_target

F32 = np.float32
RNG = np.random.default_rng(1)


@pytest.fixture(scope="module")
def loihi2():
    return load_target("loihi2")


# ------------------------------------------------------------------------------------------------ arithmetic
def test_quantize_rows_by_hand():
    # k = floor(log2(127 / 0.7)) = 7: [38.4, -89.6] -> [38, -90], both even -> [19, -45] at k = 6 (exact)
    rq = qmath.quantize_rows(np.array([[0.3, -0.7]]), 127, math.inf, 1)
    assert rq.shift.tolist() == [6] and rq.weight.tolist() == [[19, -45]]
    rq = qmath.quantize_rows(np.array([[0.3, -0.71]]), 127, math.inf, 1)  # [38.4, -90.9] -> [38, -91]
    assert rq.shift.tolist() == [7] and rq.weight.tolist() == [[38, -91]]
    # accumulator: 2^k * (0.3 + 0.71) * 2000 <= 65535 -> k = 5: [9.6, -22.72] -> [10, -23], but the rounded
    # weights need (10 + 23) * 2000 = 66000 > 65535 -> k = 4: [4.8, -11.36] -> [5, -11]
    rq = qmath.quantize_rows(np.array([[0.3, -0.71]]), 127, 2 ** 16 - 1, 2000)
    assert rq.shift.tolist() == [4] and rq.weight.tolist() == [[5, -11]] and rq.acc_limited == [0]
    rq = qmath.quantize_rows(np.array([[0.5, -0.25]]), 127, math.inf, 1)  # 64, -32 share 2^5: exact reduction
    assert rq.weight.tolist() == [[2, -1]] and rq.shift.tolist() == [2]
    rq = qmath.quantize_rows(np.array([[0.5, 0.0]]), 127, math.inf, 1, np.array([3.3]))
    assert rq.bias.tolist() == [int(round(3.3 * 2 ** rq.shift[0]))]


def test_pole_quantisation_by_hand():
    pq = qmath.quantize_poles(np.array([[math.exp(-0.5)]]), 12, 10)
    assert pq.a_re.tolist() == [[2484]] and pq.a_im.tolist() == [[0]]  # 0.6065307 * 4096 = 2484.35
    pq = qmath.quantize_poles(np.array([[1 - 1e-6]]), 12, 10)  # rounds to 4096 = no decay -> pulled inside
    assert pq.a_re.tolist() == [[4095]] and pq.nudged.all()


def test_lut_by_hand():
    table, shift, offset = qmath.make_lut(sigmoid, 1 / 16, -4.0, 4.0, 1 / 255, 9, 256)
    assert shift == 0 and offset == 64 and table.size == 129
    assert table[offset] == 128  # round(0.5 * 255) half away from zero
    assert table[offset + 16] == round(sigmoid(1.0) * 255)  # x = 1.0 is index 16 at 1/16 per unit
    table, shift, offset = qmath.make_lut(sigmoid, 1 / 16, -16.0, 16.0, 1 / 255, 9, 64)
    assert shift == 4 and table.size <= 64  # 512 input units over 63 bins -> 2^4 units per bin


# ------------------------------------------------------------------------------------------------ small graphs
def dense_graph(w: np.ndarray, b: np.ndarray) -> Graph:
    g = Graph("dense")
    g.add("input", fl.Input(size=w.shape[1]))
    g.add("fc", fl.Affine(weight=w.astype(F32), bias=b.astype(F32)), "input")
    g.inputs, g.outputs = ["input"], ["fc"]
    return check(g)


def test_dense_layer_with_known_scale(loihi2):
    x = np.linspace(-1, 1, 64).reshape(1, 64, 1)
    g = dense_graph(np.array([[0.5], [-2.0]]), np.array([0.25, 0.0]))
    q, info = compile_graph(g, loihi2, x, CompileOptions(calibration="max"))
    inp, fc = q.node("input"), q.node("fc")
    # input: 1 dense consumer of fan-in 1 -> 17 bits (65535 * 127 <= 2^23 - 1); scales are the powers of two
    # just above 1.02 * clip / limit: input 2^-15 (1.02 / 65535 = 1.56e-5), output 2^-21 (2.04 / (2^23 - 1))
    assert inp.out_bits == 17 and inp.out_scale == 2.0 ** -15
    assert fc.out_bits == 24 and fc.out_scale == 2.0 ** -21
    q2, _ = compile_graph(g, loihi2, x, CompileOptions(calibration="max", pow2_scales=False))
    assert q2.node("input").out_scale == pytest.approx(1.02 / 65535)
    y = run_int(q, x).outputs["fc"] * fc.out_scale
    np.testing.assert_allclose(y, interpret(g, x).outputs["fc"], atol=1e-3)
    assert not info["errors"]


def ssm_graph(log_dt: float = math.log(0.5), a_re: float = -1.0, c: complex = 0.5 - 0.25j) -> Graph:
    g = Graph("ssm")
    g.add("input", fl.Input(size=1))
    g.add("s", fl.S4D(log_dt=np.array([log_dt], F32), A_re=np.array([[a_re]], F32), A_im=np.array([[0.0]], F32),
                      B=np.array([[1 + 0j]], np.complex64), C=np.array([[c]], np.complex64),
                      D=np.array([0.1], F32)), "input")
    g.inputs, g.outputs = ["input"], ["s"]
    return check(g)


def test_one_mode_modebank_coefficients_by_hand(loihi2):
    x = RNG.uniform(0, 1, (16, 32, 1))
    q, info = compile_graph(ssm_graph(), loihi2, x)
    bank = q.node("s.modes")
    assert isinstance(bank, hw.QModeBank) and bank.coef_frac_bits == 12
    assert bank.a_re.tolist() == [[2484]] and bank.a_im.tolist() == [[0]]  # round(e^-0.5 * 4096)
    assert bank.b_im.tolist() == [[0]] and 64 <= bank.b_re[0, 0] <= 127  # exact real input coefficient
    basis = np.array(q.meta["quant"]["nodes"]["s.modes"]["mode_basis"][0])
    dB = 1 - math.exp(-0.5)
    s_u = q.node("input").out_scale
    # the basis maps integer state to real state: dB * s_u = b * 2^-k * basis (exact by construction)
    assert bank.b_re[0, 0] * 2.0 ** -bank.b_shift[0] * basis[0, 0] == pytest.approx(dB * s_u, rel=1e-9)
    y = run_int(q, x).outputs["s"] * q.node("s").out_scale
    f = interpret(ssm_graph(), x).outputs["s"]
    assert qmath.sqnr_db(f, y) > 40


def test_slow_pole_is_a_precision_error_naming_node_and_option(loihi2):
    g = ssm_graph(log_dt=math.log(1e-7), a_re=-1.0)  # |dA| = 1 - 1e-7: rounds to 4096 at 12 bits
    x = RNG.uniform(0, 1, (4, 64, 1))
    with pytest.warns(UserWarning, match=r"'s\.modes'.*decay_bits"):
        compile_graph(g, loihi2, x)  # 12 bits: pulled to 4095/4096, harmless over 64 steps -> warning only
    with pytest.raises(QuantizationError, match=r"'s\.modes'.*channel 0 mode 0.*decay_bits.*on_precision='warn'"):
        compile_graph(g, loihi2, x, CompileOptions(decay_bits=4))
    with pytest.warns(UserWarning, match="impulse response"):
        compile_graph(g, loihi2, x, CompileOptions(decay_bits=4, on_precision="warn"))


def test_bad_calibration_data_is_a_clear_error(loihi2):
    g = dense_graph(np.array([[0.5]]), np.zeros(1))
    with pytest.raises(QuantizationError, match=r"shape \[4, 3, 2\].*\[n, T, 1\]"):
        compile_graph(g, loihi2, np.zeros((4, 3, 2)))
    with pytest.raises(QuantizationError, match="dtype"):
        compile_graph(g, loihi2, np.array([["a"]]))
    with pytest.raises(QuantizationError, match="NaN"):
        compile_graph(g, loihi2, np.full((2, 3, 1), np.nan))


def test_calibration_methods():
    v = np.concatenate([RNG.standard_normal(10_000), [40.0]])
    st = {m: calibrate._stats(v, m, 99.0) for m in ("max", "percentile", "mse")}
    assert st["max"]["clip"] == 40.0
    assert st["percentile"]["clip"] < 4.0
    assert calibrate.mse_clip(v, 4) < 10.0 < calibrate.mse_clip(v, 24) + 30  # few bits: clip the outlier
    with pytest.raises(NeurocompileError, match="calibration='median'"):
        CompileOptions(calibration="median")


# ------------------------------------------------------------------------------------------------ blocks
def block_graph(h: int = 4, seed: int = 0) -> Graph:
    from test_passes import lif_block

    return lif_block(h)


def test_block_compiles_close_to_float(loihi2):
    g = block_graph()
    x = RNG.uniform(0, 1, (64, 24, 1))
    q, info = compile_graph(g, loihi2, x)
    assert not info["errors"], info["violations"]
    assert [p["pass"] for p in q.meta["passes"]] == ["fold", "discretize", "lower", "binarize", "calibrate",
                                                     "quantize"]
    # residual stream: one scale for the encoder, the GLU product and the add
    scales = {n: q.node(n).out_scale for n in ("enc", "glu", "add")}
    assert len(set(scales.values())) == 1, scales
    # the GLU's producer of 'a' was given the scale that makes the product exact
    mul = q.node("glu")
    assert q.node("conv.a").out_scale * q.node("glu.sigmoid").out_scale * 2.0 ** mul.shift == \
        pytest.approx(mul.out_scale, rel=1e-12)
    rep = quant_report(info["float_graph"], q, x)
    assert rep["agreement"] >= 0.95
    ro = next(r for r in rep["nodes"] if r["name"] == "s4d")
    assert ro["sqnr_db"] > 30
    lif = next(r for r in rep["nodes"] if r["name"] == "neuron")
    assert lif["spike_agreement"] > 0.98


def test_report_names_the_saturating_node(loihi2):
    """A model calibrated on small inputs saturates on large ones: the report names where."""
    g = Graph("bad")
    g.add("input", fl.Input(size=3))
    g.add("mix", fl.Affine(weight=np.array([[1, 0, 0], [0, 1, 0], [1, 1, 1]], F32), bias=np.zeros(3, F32)), "input")
    g.add("big", fl.Affine(weight=np.array([[0.0, 0.0, 50.0]], F32), bias=np.zeros(1, F32)), "mix")
    g.add("out", fl.Activation(fn="relu", size=1), "big")
    g.inputs, g.outputs = ["input"], ["out"]
    calib = RNG.uniform(-1, 1, (32, 16, 3))
    calib[:, :, 1], calib[:, :, 2] = -calib[:, :, 0], 0.0  # channel 2 of 'mix' (x0 + x1 + x2) is 0 in calibration
    q, info = compile_graph(g, loihi2, calib)
    x = RNG.uniform(0.9, 1.0, (8, 16, 3))  # inside the input's range, but now x0 + x1 + x2 is about 3
    rep = quant_report(info["float_graph"], q, x)
    assert rep["first_saturating"] == "mix" and "mix" in rep["saturating"]
    row = next(r for r in rep["nodes"] if r["name"] == "mix")
    assert row["saturations"] > 0 and row["saturation_rate"] > 0.1
    render_quant_report(rep)


# ------------------------------------------------------------------------------------------------ checks
def _int_graph(weight: np.ndarray, in_bits: int = 8, weight_bits: int = 8) -> Graph:
    g = Graph("q")
    g.add("input", hw.QInput(size=weight.shape[1], out_bits=in_bits))
    g.add("fc", hw.QDense(weight=weight.astype(np.int64), bias=np.zeros(weight.shape[0], np.int64),
                          shift=np.zeros(weight.shape[0], np.int64), weight_bits=weight_bits, out_bits=16), "input")
    g.inputs, g.outputs = ["input"], ["fc"]
    return g


def test_checks_report_every_rule_with_used_and_limit():
    prec = Precision(weight_bits=8, accumulator_bits=16, input_axons=4, message_bits=12)
    v = checks.check_graph(_int_graph(np.full((2, 5), 200), in_bits=10, weight_bits=9), prec)
    rules = {(x.rule, x.resource.split()[0]) for x in v}
    assert ("weight-bits", "declared") in rules and ("weight-bits", "|weight|") in rules
    acc = next(x for x in v if x.rule == "accumulator")
    assert acc.used == 5 * 200 * 511 and acc.limit == 2 ** 15 - 1 and acc.severity == "error"
    fan = next(x for x in v if x.rule == "fan-in")
    assert (fan.used, fan.limit) == (5, 4)
    msg = next(x for x in v if x.rule == "message-bits")
    assert (msg.node, msg.used, msg.limit) == ("fc", 16, 12)
    assert all(x.to_dict()["severity"] in ("error", "warning") for x in v)
    assert checks.check_graph(_int_graph(np.ones((2, 2))), Precision()) == []


def test_loihi1_graded_messages_are_design_rule_errors():
    g = block_graph()
    x = RNG.uniform(0, 1, (16, 12, 1))
    with pytest.warns(UserWarning, match="1-bit messages"):
        q, info = compile_graph(g, load_target("loihi1"), x)
    assert {v.rule for v in info["errors"]} >= {"message-bits"}
    # the encoder is synapses only: its dendritic sums stay on the cores of the compartments they feed
    assert not any(v.node == "enc" and v.rule == "message-bits" for v in info["errors"])


def test_accumulator_overflow_is_an_error_naming_node_and_option(loihi2):
    """Eight 17-bit inputs summed on one port into a 64-input dense layer cannot fit a 16-bit accumulator."""
    g = Graph("acc")
    g.add("input", fl.Input(size=64))
    for i in range(8):
        g.add(f"p{i}", fl.Affine(weight=np.eye(64, dtype=F32), bias=np.full(64, 0.01, F32)), "input")
    g.add("fc", fl.Affine(weight=np.full((2, 64), 1e-3, F32), bias=np.zeros(2, F32)), [f"p{i}" for i in range(8)])
    g.inputs, g.outputs = ["input"], ["fc"]
    with pytest.raises(QuantizationError, match=r"'fc'.*accumulator.*accumulator_bits"):
        compile_graph(g, loihi2, RNG.uniform(-1, 1, (4, 8, 64)), CompileOptions(accumulator_bits=16))
