"""The floating-point paths are exact: float32/float64 BLAS and the float64 SSM recurrence equal int64 and the kernels,
at the exactness bounds and on random graphs; past a bound the engine falls back to int64."""

from __future__ import annotations

import numpy as np
import pytest

from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.sim.engine import EXACT_F32, EXACT_F64, plan, simulate
from neurocompile.sim.fixed import limit


def arr(*v: int) -> np.ndarray:
    return np.array(v, np.int64)


def assert_same(g: Graph, x, **kw) -> dict:
    """auto, int64 and reference agree on outputs, traces, final states, saturations and counts."""
    runs = {a: simulate(g, x, record=True, arith=a, **kw) for a in ("auto", "int64", "reference")}
    ref = runs["reference"]
    for a in ("auto", "int64"):
        r = runs[a]
        assert r.trace.keys() == ref.trace.keys()
        for k in ref.trace:
            assert np.array_equal(r.trace[k], ref.trace[k]), (a, k)
        for k, d in ref.final_states.items():
            for sk, v in d.items():
                assert np.array_equal(r.final_states[k][sk], v), (a, k, sk)
        assert r.saturations == ref.saturations, a
        assert r.counts == ref.counts, a
        assert np.array_equal(r.predictions, ref.predictions)
    return runs


def dense_graph(in_bits: int, weight: np.ndarray, out_bits: int = 0, shift: int = 0) -> Graph:
    g = Graph("dense")
    g.add("x", hw.QInput(size=weight.shape[1], out_scale=1.0, out_bits=in_bits))
    g.add("d", hw.QDense(weight=weight.astype(np.int64), bias=np.zeros(weight.shape[0], np.int64),
                         shift=np.full(weight.shape[0], shift, np.int64), out_bits=out_bits, weight_bits=64), "x")
    g.inputs, g.outputs = ["x"], ["d"]
    return g


def extreme_inputs(weight: np.ndarray, in_bits: int, n: int = 6, steps: int = 3, seed: int = 0) -> np.ndarray:
    """Inputs at +-max aligned with the first row's signs (the worst case), plus random ones near the max."""
    rng = np.random.default_rng(seed)
    m = limit(in_bits)
    x = rng.integers(m - 3, m + 1, (n, steps, weight.shape[1])) * rng.choice([-1, 1], (n, steps, weight.shape[1]))
    x[0, 0] = m * np.sign(weight[0])
    x[0, 1] = -m * np.sign(weight[0])
    return x.astype(np.float64)


def test_float32_blas_up_to_2_pow_24_then_float64() -> None:
    m = limit(8)  # 127
    below = np.full((2, 4), (EXACT_F32 - 1) // (4 * m), np.int64)  # 4 * 33025 * 127 = 16,776,700 < 2^24
    below[1, ::2] *= -1
    g = dense_graph(8, below)
    assert plan(g).path["d"] == "float32-blas"
    r = assert_same(g, extreme_inputs(below, 8))
    assert abs(r["auto"].outputs["d"]).max() == 4 * below[0, 0] * m  # the bound itself is reached
    above = below.copy()
    above[0, 0] += (EXACT_F32 - 4 * m * below[0, 0]) // m + 1  # the row sum now crosses 2^24
    g = dense_graph(8, above)
    assert plan(g).path["d"] == "float64-blas"
    assert_same(g, extreme_inputs(above, 8))


def test_float64_blas_up_to_2_pow_53_then_int64() -> None:
    bits = 40  # inputs up to 2^39 - 1
    m = limit(bits)
    w = np.array([[1 << 13, (1 << 13) - 1], [-(1 << 13), 3]], np.int64)  # (2^14 - 1) * (2^39 - 1) < 2^53
    g = dense_graph(bits, w, out_bits=24, shift=30)
    assert plan(g).path["d"] == "float64-blas"
    assert_same(g, extreme_inputs(w, bits))
    w2 = w.copy()
    w2[0, 1] += 2  # (2^14 + 1) * (2^39 - 1) > 2^53: float64 would round, the engine takes int64
    g2 = dense_graph(bits, w2, out_bits=24, shift=30)
    assert plan(g2).path["d"] == "int64"
    runs = assert_same(g2, extreme_inputs(w2, bits))
    # and float64 really is wrong there: the exact sum is odd and above 2^53
    x = np.array([m, m], np.int64)
    exact = int(w2[0] @ x)
    assert exact > EXACT_F64 and exact % 2 == 1
    assert int(np.float64(x) @ np.float64(w2[0])) != exact
    assert runs["auto"].paths["d"] == "int64"


@pytest.mark.parametrize("state_bits, path", [(41, "float64"), (42, "int64")])
def test_modebank_float64_at_its_bound(state_bits: int, path: str) -> None:
    """|a_re| + |a_im| = 8190 < 2^13: with 41-bit states the rotation sums stay below 2^53, with 42 they do not."""
    g = Graph("bank")
    g.add("x", hw.QInput(size=2, out_scale=1.0, out_bits=24))
    a = np.array([[4095, -4095], [4095, 2000]], np.int64)
    g.add("ssm", hw.QModeBank(a_re=a, a_im=a[:, ::-1].copy(), b_re=np.array([[127, -127], [-127, 101]]),
                              b_im=np.array([[-127, 3], [127, -127]]), b_shift=arr(-10, -9), out_bits=state_bits), "x")
    g.add("ro", hw.QModeReadout(c_re=np.array([[127, -127], [5, 127]]), c_im=np.array([[-127, 127], [127, -1]]),
                                d=arr(127, -127), shift=arr(20, 21), out_bits=24), {"state": "ssm", "skip": "x"})
    g.inputs, g.outputs = ["x"], ["ro"]
    p = plan(g)
    assert p.path["ssm"] == path
    rng = np.random.default_rng(1)
    x = (rng.choice([-1, 1], (4, 8, 2)) * rng.integers(limit(24) - 5, limit(24) + 1, (4, 8, 2))).astype(np.float64)
    runs = assert_same(g, x)
    assert runs["auto"].saturations["ssm"] > 0  # the states sit at the saturation limit: the largest products


# -- random graphs -----------------------------------------------------------------------------------------

def _w(rng: np.random.Generator, *shape: int, bits: int = 8) -> np.ndarray:
    lim = limit(bits)
    return rng.integers(-lim, lim + 1, size=shape).astype(np.int64)


def random_graph(seed: int) -> Graph:
    """A random valid graph using every node type, with random widths, shifts, roundings and delays."""
    rng = np.random.default_rng(seed)
    d, h, m = (int(v) for v in (rng.integers(1, 5), rng.integers(1, 6), rng.integers(1, 4)))
    bits = lambda lo=6, hi=25: int(rng.integers(lo, hi))  # noqa: E731
    shifts = lambda n, lo=-1, hi=7: rng.integers(lo, hi, n).astype(np.int64)  # noqa: E731
    g = Graph(f"random{seed}")
    g.add("x", hw.QInput(size=d, out_scale=float(rng.choice([0.05, 0.5, 1.0, 1e-6])), out_bits=bits(2, 30)))
    g.add("enc", hw.QDense(weight=_w(rng, h, d, bits=bits(4, 20)), bias=_w(rng, h, bits=10), shift=shifts(h, -1, 24),
                           rounding=str(rng.choice(["nearest", "floor"])), delay=int(rng.integers(0, 3)),
                           out_bits=bits(8, 20)), "x")
    mag = rng.uniform(0.3, 1.0, (h, m))
    ang = rng.uniform(-np.pi, np.pi, (h, m))
    g.add("ssm", hw.QModeBank(a_re=np.round(mag * np.cos(ang) * 4096).astype(np.int64),
                              a_im=np.round(mag * np.sin(ang) * 4096).astype(np.int64), b_re=_w(rng, h, m),
                              b_im=_w(rng, h, m), b_shift=shifts(h, -2, 6), out_bits=bits(10, 26)), "enc")
    g.add("ro", hw.QModeReadout(c_re=_w(rng, h, m), c_im=_w(rng, h, m), d=_w(rng, h), shift=shifts(h, 0, 12),
                                out_bits=bits(6, 17)), {"state": "ssm", "skip": "enc"})
    g.add("lif", hw.QLIF(decay=int(rng.integers(0, 4097)), vth=rng.integers(1, 60, h).astype(np.int64),
                         compare=str(rng.choice([">=", ">"])), reset=str(rng.choice(["zero", "subtract"])),
                         state_bits=bits(6, 24)), "ro")
    g.add("rf", hw.QRefractory(decay=int(rng.integers(0, 4097)), lam=int(rng.integers(0, 4097)),
                               vth=rng.integers(1, 60, h).astype(np.int64), rho=rng.integers(0, 20, h).astype(np.int64),
                               trace_frac_bits=int(rng.integers(0, 6)), state_bits=bits(8, 24)), "ro")
    g.add("hv", hw.QHeaviside(vth=rng.integers(-3, 20, h).astype(np.int64), compare=str(rng.choice([">", ">="]))),
          "ro")
    g.add("tern", hw.QTernarize(num=3, den=20, size=h), "enc")
    g.add("da", hw.QDense(weight=_w(rng, h, h), bias=_w(rng, h, bits=6), shift=shifts(h, 0, 4), out_bits=bits(6, 16)),
          ["lif", "rf", "tern"])
    g.add("db", hw.QDense(weight=_w(rng, h, h), bias=_w(rng, h, bits=6), shift=shifts(h, 0, 4), out_bits=bits(6, 16)),
          ["hv"])
    n_tab = int(rng.integers(2, 40))
    g.add("lut", hw.QLUT(table=_w(rng, n_tab, bits=9), in_shift=int(rng.integers(-1, 4)),
                         offset=int(rng.integers(0, n_tab)), size=h, out_bits=9), "db")
    g.add("mul", hw.QMul(shift=int(rng.integers(0, 8)), size=h, out_bits=bits(6, 16)), {"a": "da", "b": "lut"})
    g.add("res", hw.QAdd(size=h, out_bits=bits(6, 16)), ["mul", "enc"])
    g.add("pool", hw.QAccumulate(size=h, out_bits=bits(8, 32)), "res")
    g.add("head", hw.QDense(weight=_w(rng, 3, h), bias=np.zeros(3, np.int64), shift=np.zeros(3, np.int64),
                            out_bits=0), "pool")
    g.inputs, g.outputs = ["x"], ["head", "res"]
    return g


@pytest.mark.parametrize("seed", range(10))
def test_random_graphs_all_paths_agree(seed: int) -> None:
    g = random_graph(seed)
    rng = np.random.default_rng(100 + seed)
    n, steps = int(rng.integers(1, 7)), int(rng.integers(1, 9))
    x = rng.standard_normal((n, steps, g.node("x").size)) * float(rng.choice([1.0, 30.0]))
    runs = assert_same(g, x, batch_size=int(rng.integers(1, 5)), record_sample=int(rng.integers(0, n)))
    used = set(runs["auto"].paths.values())
    assert used & {"float32-blas", "float64-blas", "float64"}, used  # the fast paths did run
    for a in ("auto", "int64"):
        st = runs[a].sample_trace
        for k, v in runs["reference"].sample_trace.items():
            assert np.array_equal(st[k], v), (a, k)


def test_threads_and_batch_size_do_not_change_results() -> None:
    g = random_graph(4)
    x = np.random.default_rng(7).standard_normal((7, 5, g.node("x").size)) * 10
    one = simulate(g, x, record=True, batch_size=7, record_sample=5)
    two = simulate(g, x, record=True, batch_size=2, threads=3, record_sample=5)
    assert one.counts == two.counts and one.saturations == two.saturations and one.spikes == two.spikes
    for k in one.trace:
        assert np.array_equal(one.trace[k], two.trace[k]), k
    for k, d in one.final_states.items():
        for sk, v in d.items():
            assert np.array_equal(two.final_states[k][sk], v), (k, sk)
    for k, v in one.sample_trace.items():
        assert np.array_equal(two.sample_trace[k], v), k
    for k, v in one.trace.items():  # the recorded sample is row 5 of the full trace
        assert np.array_equal(one.sample_trace[k], v[5]), k
    assert set(one.sample_spikes) == {"lif", "rf", "hv", "tern"}
