"""Hand-computed traces of every integer node type, through :func:`neurocompile.sim.engine.simulate`.

Every expected value below is worked out by hand in the comments from docs/semantics.md (never by calling the
kernels). Each test runs the three arithmetic paths of the engine: 'reference' (kernels.py), 'int64' and 'auto'.
"""

from __future__ import annotations

import numpy as np
import pytest

from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.sim.engine import simulate

ARITH = ("reference", "int64", "auto")
I = np.int64


def arr(*v: int) -> np.ndarray:
    return np.array(v, np.int64)


def graph(*inputs: tuple[str, int, int]) -> Graph:
    """A graph with integer-valued inputs (out_scale 1): (name, size, out_bits)."""
    g = Graph("t")
    for name, size, bits in inputs:
        g.add(name, hw.QInput(size=size, out_scale=1.0, out_bits=bits))
    g.inputs = [n for n, _, _ in inputs]
    return g


def seq(*steps: float | list[float]) -> np.ndarray:
    """One sample's sequence [1, T, d] from per-step values."""
    return np.array([[s if isinstance(s, list) else [s] for s in steps]], np.float64)


def run(g: Graph, x, arith: str, **kw):
    r = simulate(g, x, record=True, arith=arith, **kw)
    ref = simulate(g, x, record=True, arith="reference", **kw)
    # the three paths agree on everything, not only on what a test looks at
    for k in ref.trace:
        assert np.array_equal(r.trace[k], ref.trace[k]), k
    assert r.saturations == ref.saturations
    assert r.counts == ref.counts
    return r


@pytest.mark.parametrize("arith", ARITH)
def test_input_rounds_half_away_from_zero_and_saturates(arith: str) -> None:
    g = Graph("t")
    g.add("x", hw.QInput(size=1, out_scale=0.5, out_bits=4))  # limit 7
    g.inputs, g.outputs = ["x"], ["x"]
    # x / 0.5 = 0.5, -0.5, 1.5, -1.5, 7.8, -7.8, 0.2 -> 1, -1, 2, -2, 8 -> 7 (sat), -8 -> -7 (sat), 0
    r = run(g, seq(0.25, -0.25, 0.75, -0.75, 3.9, -3.9, 0.1), arith)
    assert r.outputs["x"][0, :, 0].tolist() == [1, -1, 2, -2, 7, -7, 0]
    assert r.saturations["x"] == 2


@pytest.mark.parametrize("arith", ARITH)
@pytest.mark.parametrize("rounding, expected", [
    # acc = x; nearest: (x + 1) >> 1 -> 3: 2, -3: -1, 1: 1, -1: 0, 5: 3, -5: -2, 0: 0 (halves toward +inf)
    ("nearest", [2, -1, 1, 0, 3, -2, 0]),
    # floor: x >> 1 -> 3: 1, -3: -2, 1: 0, -1: -1, 5: 2, -5: -3, 0: 0
    ("floor", [1, -2, 0, -1, 2, -3, 0]),
])
def test_dense_rounding_of_negative_halves(arith: str, rounding: str, expected: list[int]) -> None:
    g = graph(("x", 1, 8))
    g.add("d", hw.QDense(weight=arr(1).reshape(1, 1), bias=arr(0), shift=arr(1), rounding=rounding, out_bits=8), "x")
    g.outputs = ["d"]
    r = run(g, seq(3, -3, 1, -1, 5, -5, 0), arith)
    assert r.outputs["d"][0, :, 0].tolist() == expected


@pytest.mark.parametrize("arith", ARITH)
def test_dense_bias_per_channel_shift_left_shift_and_saturation(arith: str) -> None:
    g = graph(("x", 2, 8))
    w = np.array([[2, 1], [-3, 0], [1, 1]], np.int64)
    g.add("d", hw.QDense(weight=w, bias=arr(1, 4, 0), shift=arr(2, 0, -1), out_bits=4), "x")  # limit 7
    g.outputs = ["d"]
    # step 0, x = (3, -1): acc = (6 - 1 + 1, -9 + 4, 3 - 1 + 0) = (6, -5, 2)
    #   ch0 rsh_round(6, 2) = (6 + 2) >> 2 = 2; ch1 shift 0: -5; ch2 shift -1: 2 << 1 = 4
    # step 1, x = (-4, 2): acc = (-8 + 2 + 1, 12 + 4, -4 + 2) = (-5, 16, -2)
    #   ch0 (-5 + 2) >> 2 = -1 (floor(-0.75)); ch1 16 -> 7 (sat); ch2 -2 << 1 = -4
    r = run(g, seq([3, -1], [-4, 2]), arith)
    assert r.outputs["d"][0].tolist() == [[2, -5, 4], [-1, 7, -4]]
    assert r.saturations["d"] == 1


@pytest.mark.parametrize("arith", ARITH)
def test_dense_delay(arith: str) -> None:
    g = graph(("x", 1, 8))
    g.add("d", hw.QDense(weight=arr(2).reshape(1, 1), bias=arr(0), shift=arr(0), delay=2, out_bits=8), "x")
    g.outputs = ["d"]
    # y_t = 2 x_t emitted at t + 2: x = 1, 2, 3, 4 -> 0, 0, 2, 4; still in the pipe: 6 (next), 8
    r = run(g, seq(1, 2, 3, 4), arith)
    assert r.outputs["d"][0, :, 0].tolist() == [0, 0, 2, 4]
    assert r.final_states["d"]["pipe"][0, :, 0].tolist() == [6, 8]


@pytest.mark.parametrize("arith", ARITH)
def test_modebank_rotation_truncation_and_input_rounding(arith: str) -> None:
    g = graph(("x", 1, 8))
    g.add("ssm", hw.QModeBank(a_re=arr(2048).reshape(1, 1), a_im=arr(1024).reshape(1, 1),  # 0.5, 0.25
                              b_re=arr(3).reshape(1, 1), b_im=arr(-2).reshape(1, 1), b_shift=arr(1), out_bits=24),
          "x")
    g.outputs = ["ssm"]
    # t0 u=5: in_re = (15 + 1) >> 1 = 8, in_im = (-10 + 1) >> 1 = -5 (floor(-4.5)); re, im = 8, -5
    # t1 u=0: re = trunc((2048*8 - 1024*(-5)) / 4096) = trunc(21504/4096 = 5.25) = 5
    #         im = trunc((1024*8 + 2048*(-5)) / 4096) = trunc(-0.5) = 0           (toward zero, not -1)
    # t2 u=-3: in_re = (-9 + 1) >> 1 = -4, in_im = (6 + 1) >> 1 = 3
    #         re = trunc(2048*5/4096 = 2.5) - 4 = 2 - 4 = -2 ;  im = trunc(1024*5/4096 = 1.25) + 3 = 4
    # t3 u=0: re = trunc((2048*(-2) - 1024*4)/4096 = -2) = -2 ; im = trunc((1024*(-2) + 2048*4)/4096 = 1.5) = 1
    r = run(g, seq(5, 0, -3, 0), arith)
    assert r.outputs["ssm"][0].tolist() == [[8, -5], [5, 0], [-2, 4], [-2, 1]]
    assert r.final_states["ssm"]["re"].tolist() == [[[-2]]]
    assert r.final_states["ssm"]["im"].tolist() == [[[1]]]
    if arith == "auto":
        assert r.paths["ssm"] == "float64"


@pytest.mark.parametrize("arith", ARITH)
def test_modebank_layout_and_saturation(arith: str) -> None:
    g = graph(("x", 2, 8))
    z = np.zeros((2, 2), np.int64)
    # two channels x two modes, no memory (a = 0): state = rsh_round(b * u, 0) = b * u, saturated to 15
    g.add("ssm", hw.QModeBank(a_re=z, a_im=z, b_re=np.array([[1, 2], [3, 20]]), b_im=np.array([[-1, 0], [0, -20]]),
                              b_shift=arr(0, 0), out_bits=5), "x")
    g.outputs = ["ssm"]
    # u = (1, 1): (h0 m0 re, im, h0 m1 re, im, h1 m0 re, im, h1 m1 re, im) = (1, -1, 2, 0, 3, 0, 20->15, -20->-15)
    r = run(g, seq([1, 1]), arith)
    assert r.outputs["ssm"][0, 0].tolist() == [1, -1, 2, 0, 3, 0, 15, -15]
    assert r.saturations["ssm"] == 2


def _readout(g: Graph, state_src: str, skip_src: str, out_bits: int = 8) -> None:
    g.add("ro", hw.QModeReadout(c_re=np.array([[3, -1]]), c_im=np.array([[2, 5]]), d=arr(4), shift=arr(2),
                                out_bits=out_bits), {"state": state_src, "skip": skip_src})
    g.outputs = ["ro"]


@pytest.mark.parametrize("arith", ARITH)
def test_modereadout_on_its_own(arith: str) -> None:
    g = graph(("s", 4, 8), ("u", 1, 8))
    _readout(g, "s", "u")
    # state (re0, im0, re1, im1) = (1, 2, -3, 4), u = 1: acc = 3*1 + 2*2 + (-1)(-3) + 5*4 + 4*1 = 34 -> (34+2)>>2 = 9
    # state (-1, 0, 0, 0), u = 0: acc = -3 -> (-3+2)>>2 = -1 ; state (0, 0, 2, 0), u = 0: acc = -2 -> 0 (half up)
    x = {"s": seq([1, 2, -3, 4], [-1, 0, 0, 0], [0, 0, 2, 0]), "u": seq(1, 0, 0)}
    r = run(g, x, arith)
    assert r.outputs["ro"][0, :, 0].tolist() == [9, -1, 0]


@pytest.mark.parametrize("arith", ARITH)
def test_modereadout_fused_with_its_bank(arith: str) -> None:
    g = graph(("x", 1, 8))
    z = np.zeros((1, 2), np.int64)
    g.add("ssm", hw.QModeBank(a_re=z, a_im=z, b_re=np.array([[1, 2]]), b_im=np.array([[3, -1]]), b_shift=arr(0),
                              out_bits=24), "x")
    _readout(g, "ssm", "x", out_bits=3)  # limit 3
    # u=2: re = (2, 4), im = (6, -2): acc = 6 - 4 + 12 - 10 + 8 = 12 -> (12+2)>>2 = 3
    # u=-1: re = (-1, -2), im = (-3, 1): acc = -3 + 2 - 6 + 5 - 4 = -6 -> (-6+2)>>2 = -1
    # u=5: re = (5, 10), im = (15, -5): acc = 15 - 10 + 30 - 25 + 20 = 30 -> 32>>2 = 8 -> 3 (sat)
    r = run(g, seq(2, -1, 5, 0), arith)
    assert r.outputs["ro"][0, :, 0].tolist() == [3, -1, 3, 0]
    assert r.saturations["ro"] == 1
    if arith != "reference":
        assert r.paths["ro"] == ("float64" if arith == "auto" else "int64")


@pytest.mark.parametrize("arith", ARITH)
def test_lif_compare_reset_truncation_and_saturation(arith: str) -> None:
    g = graph(("x", 3, 8))
    g.add("ge", hw.QLIF(decay=2048, vth=arr(10, 10, 10), state_bits=5), "x")  # 0.5, limit 15
    g.add("gt", hw.QLIF(decay=2048, vth=arr(10, 10, 10), compare=">", reset="subtract", state_bits=24), "x")
    g.outputs = ["ge", "gt"]
    x = seq([6, -7, 20], [6, 0, 0], [6, 0, 20], [0, 0, 0], [20, 0, 0])
    r = run(g, x, arith)
    # '>=', reset zero, ch0: v = 6; 3 + 6 = 9; trunc(4.5) + 6 = 10 -> spike, 0; 0; 20 -> 15 (sat) -> spike, 0
    # ch1 (negative, toward zero): -7; trunc(-3.5) = -3; trunc(-1.5) = -1; trunc(-0.5) = 0; 0
    # ch2: 20 -> 15 (sat), spike -> 0; 0; 20 -> 15 (sat), spike; 0; 0
    assert r.outputs["ge"][0].T.tolist() == [[0, 0, 1, 0, 1], [0, 0, 0, 0, 0], [1, 0, 1, 0, 0]]
    assert r.saturations["ge"] == 3
    assert r.final_states["ge"]["v"].tolist() == [[0, 0, 0]]
    # '>', reset subtract, ch0: 6; 9; 10 (not > 10); 5; trunc(2.5) + 20 = 22 -> spike, 22 - 10 = 12
    # ch2: 20 -> spike, 10; 5; 2 + 20 = 22 -> spike, 12; 6; 3
    assert r.outputs["gt"][0].T.tolist() == [[0, 0, 0, 0, 1], [0, 0, 0, 0, 0], [1, 0, 1, 0, 0]]
    assert r.final_states["gt"]["v"].tolist() == [[12, 0, 3]]
    assert r.spikes == {"ge": 4, "gt": 3}
    assert r.spikes_per_step["ge"].tolist() == [1, 0, 2, 0, 1]


@pytest.mark.parametrize("arith", ARITH)
def test_heaviside(arith: str) -> None:
    g = graph(("x", 2, 8))
    g.add("gt", hw.QHeaviside(vth=arr(0, 2)), "x")
    g.add("ge", hw.QHeaviside(vth=arr(0, 2), compare=">="), "x")
    g.outputs = ["gt", "ge"]
    r = run(g, seq([0, 2], [1, 3], [-1, 1]), arith)
    # '>': (0 > 0, 2 > 2) = (0, 0); (1, 1); (0, 0).  '>=': (1, 1); (1, 1); (0, 0)
    assert r.outputs["gt"][0].tolist() == [[0, 0], [1, 1], [0, 0]]
    assert r.outputs["ge"][0].tolist() == [[1, 1], [1, 1], [0, 0]]


@pytest.mark.parametrize("arith", ARITH)
def test_refractory(arith: str) -> None:
    g = graph(("x", 1, 8))
    g.add("n", hw.QRefractory(decay=2048, lam=2048, vth=arr(10), rho=arr(3), trace_frac_bits=2), "x")
    g.outputs = ["n"]
    # t0: v = 0 + 12 - 0 - 0 = 12 -> s = 1; r = 0 + (1 << 2) = 4
    # t1: v = trunc(6) + 0 - 10*1 - rsh_round(3*4 = 12, 2) = 6 - 10 - 3 = -7 -> s = 0; r = trunc(2) = 2
    # t2: v = trunc(-3.5) + 12 - 0 - rsh_round(6, 2) = -3 + 12 - 2 = 7 (1.5 rounds up to 2) -> s = 0; r = 1
    # t3: v = trunc(3.5) + 12 - rsh_round(3, 2) = 3 + 12 - 1 = 14 -> s = 1; r = trunc(0.5) + 4 = 4
    r = run(g, seq(12, 0, 12, 12), arith)
    assert r.outputs["n"][0, :, 0].tolist() == [1, 0, 0, 1]
    fs = r.final_states["n"]
    assert (fs["v"].item(), fs["s"].item(), fs["r"].item()) == (14, 1, 4)


@pytest.mark.parametrize("arith", ARITH)
def test_lut_rounding_and_clamping(arith: str) -> None:
    g = graph(("x", 1, 8))
    g.add("f", hw.QLUT(table=arr(10, 20, 30, 40, 50), in_shift=1, offset=2, size=1, out_bits=8), "x")
    g.outputs = ["f"]
    # idx = rsh_round(x, 1) + 2: 0 -> 2; 1 -> 1 + 2 = 3; -1 -> 0 + 2 = 2 (half up); 3 -> 2 + 2 = 4;
    # -3 -> -1 + 2 = 1; 100 -> 52 -> 4 (clamped); -100 -> -48 -> 0 (clamped)
    r = run(g, seq(0, 1, -1, 3, -3, 100, -100), arith)
    assert r.outputs["f"][0, :, 0].tolist() == [30, 40, 30, 50, 20, 50, 10]
    assert r.saturations["f"] == 2


@pytest.mark.parametrize("arith", ARITH)
def test_mul(arith: str) -> None:
    g = graph(("a", 1, 8), ("b", 1, 8))
    g.add("m", hw.QMul(shift=2, size=1, out_bits=4), {"a": "a", "b": "b"})  # limit 7
    g.outputs = ["m"]
    # a*b = 3, -3, 15, -2, 100 -> (p + 2) >> 2 = 1, -1, 4, 0, 25 -> 7 (sat)
    r = run(g, {"a": seq(3, -3, 5, -2, 10), "b": seq(1, 1, 3, 1, 10)}, arith)
    assert r.outputs["m"][0, :, 0].tolist() == [1, -1, 4, 0, 7]
    assert r.saturations["m"] == 1


@pytest.mark.parametrize("arith", ARITH)
def test_ternarize(arith: str) -> None:
    g = graph(("x", 5, 8))
    g.add("t", hw.QTernarize(num=3, den=20, size=5), "x")
    g.outputs = ["t"]
    # max |x| = 10: keep |x| * 20 >= 30: 10, -2, -10 kept, 1 and 0 not. all zero -> zeros.
    # max 20: 3 * 20 = 60 >= 3 * 20 (equality keeps), 2 * 20 = 40 < 60
    r = run(g, seq([10, -2, 1, 0, -10], [0, 0, 0, 0, 0], [20, 3, 2, -3, 0]), arith)
    assert r.outputs["t"][0].tolist() == [[1, -1, 0, 0, -1], [0, 0, 0, 0, 0], [1, 1, 0, -1, 0]]
    assert r.spikes["t"] == 6


@pytest.mark.parametrize("arith", ARITH)
def test_add_saturates_the_exact_sum(arith: str) -> None:
    g = graph(("a", 1, 8), ("b", 1, 8))
    g.add("s", hw.QAdd(size=1, out_bits=4), ["a", "b"])  # limit 7
    g.outputs = ["s"]
    # 3 + 5 = 8 -> 7; -3 - 5 = -8 -> -7; 2 - 1 = 1
    r = run(g, {"a": seq(3, -3, 2), "b": seq(5, -5, -1)}, arith)
    assert r.outputs["s"][0, :, 0].tolist() == [7, -7, 1]
    assert r.saturations["s"] == 2


@pytest.mark.parametrize("arith", ARITH)
def test_accumulate_and_sequence_end_readout(arith: str) -> None:
    g = graph(("x", 1, 8))
    g.add("pool", hw.QAccumulate(size=1, out_bits=5), "x")  # limit 15
    g.add("head", hw.QDense(weight=np.array([[1], [-1], [1]]), bias=arr(0, 1, 0), shift=arr(0, 0, 0), out_bits=0),
          "pool")
    g.outputs = ["head"]
    # acc = 4, 10, 17 -> 15 (sat), 13; the readout runs once: (13, -13 + 1, 13) -> argmax 0 (tie with 2: lowest)
    r = run(g, seq(4, 6, 7, -2), arith)
    assert r.trace["pool"][0, :, 0].tolist() == [4, 10, 15, 13]
    assert r.outputs["head"].tolist() == [[13, -12, 13]]
    assert r.trace["head"].tolist() == [[13, -12, 13]]
    assert r.predictions.tolist() == [0]
    assert r.saturations["pool"] == 1


@pytest.mark.parametrize("arith", ARITH)
def test_embedding_of_tokens(arith: str) -> None:
    g = Graph("t")
    g.add("tok", hw.QInput(size=1, tokens=True, vocab=3))
    g.add("e", hw.QEmbedding(table=np.array([[1, 2], [3, 4], [5, 6]]), out_bits=8), "tok")
    g.inputs, g.outputs = ["tok"], ["e"]
    r = run(g, np.array([[2, 0, 1]]), arith)
    assert r.outputs["e"][0].tolist() == [[5, 6], [1, 2], [3, 4]]


@pytest.mark.parametrize("arith", ARITH)
def test_lava_lif(arith: str) -> None:
    g = graph(("x", 1, 8))
    g.add("n", hw.QLavaLIF(du=4095, dv=0, vth=arr(1), bias_mant=arr(0), bias_exp=arr(0)), "x")
    g.outputs = ["n"]
    # du = 4095: u = x << 6; dv = 0: v keeps its value. threshold 1 << 6 = 64, strict.
    # t0: u = 64, v = 64 (not > 64); t1: u = 0, v = 64; t2: u = 64, v = 128 -> spike, v = 0
    r = run(g, seq(1, 0, 1), arith)
    assert r.outputs["n"][0, :, 0].tolist() == [0, 0, 1]
    assert r.final_states["n"]["v"].item() == 0


@pytest.mark.parametrize("arith", ARITH)
def test_ports_sum_their_inputs_and_batches_do_not_matter(arith: str) -> None:
    g = graph(("a", 2, 8), ("b", 2, 8))
    g.add("d", hw.QDense(weight=np.array([[1, 1]]), bias=arr(0), shift=arr(0), out_bits=8), ["a", "b"])
    g.outputs = ["d"]
    rng = np.random.default_rng(0)
    x = {"a": rng.integers(-5, 6, (5, 3, 2)).astype(float), "b": rng.integers(-5, 6, (5, 3, 2)).astype(float)}
    r = run(g, x, arith, batch_size=2)
    # the dense sees a + b summed per port (dendritic accumulation): W (a + b)
    assert r.outputs["d"][..., 0].tolist() == (x["a"] + x["b"]).sum(-1).astype(int).tolist()
    r1 = simulate(g, x, arith=arith, batch_size=5)
    assert np.array_equal(r1.outputs["d"], r.outputs["d"]) and r1.counts == r.counts


@pytest.mark.parametrize("arith", ARITH)
def test_edge_delay(arith: str) -> None:
    g = graph(("x", 1, 8))
    g.add("n", hw.QDense(weight=arr(1).reshape(1, 1), bias=arr(0), shift=arr(0), out_bits=8), "x")
    g.add("s", hw.QAdd(size=1, out_bits=8), "n")
    g.connect("x", "s", "in", delay=2)  # s_t = x_t + x_{t-2}
    g.add("d", hw.QDense(weight=arr(3).reshape(1, 1), bias=arr(0), shift=arr(0), out_bits=8))
    g.connect("x", "d", "in", delay=1)  # d_t = 3 x_{t-1}
    g.outputs = ["s", "d"]
    r = run(g, seq(1, 0, 2, 5), arith)
    assert r.outputs["s"][0, :, 0].tolist() == [1, 0, 3, 5]
    assert r.outputs["d"][0, :, 0].tolist() == [0, 3, 0, 6]
    # d's synaptic ops are driven by what arrives: x_{t-1} = 0, 1, 0, 2 -> 2 non-zero arrivals (x itself has 3)
    assert r.counts.layer("d").synops_effective_mac == 2
