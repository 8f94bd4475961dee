"""Lava's own Dense + LIF (fixed_pt) against neurocompile's simulator through ``from_lava_dense_lif``.

The Lava side is a plain Lava network (RingBuffer -> Dense -> LIF, Monitors), built without the backend;
the neurocompile side is the converted graph stepped by the simulator's kernels. Spikes, u and v must agree
at every step. Parameters are random integers with mixed signs, every weight precision 1..8, every sign mode,
and the edge values du, dv in {0, 4095}.
"""

from __future__ import annotations

import numpy as np
import pytest

from neurocompile.backends.lava import from_lava_dense_lif, from_lava_layers, lava_available, lava_weight_mantissa
from neurocompile.errors import UnsupportedOpError
from neurocompile.ir import hw
from neurocompile.sim import kernels


def needs_lava(test):
    """Marks a test that runs Lava (select with ``-m lava``); skips it when lava-nc 0.10.0 does not import."""
    return pytest.mark.lava(pytest.mark.skipif(not lava_available(), reason="lava-nc 0.10.0 not importable")(test))

N_IN, N_OUT, T = 12, 5, 32


def _lava_dense_lif(spikes: np.ndarray, p: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plain Lava: spikes [T, n_in] -> (s, u, v) each [T, n_out]."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor

    t_len, n_out = spikes.shape[0], p["weights"].shape[0]
    src = RingBuffer(data=spikes.T.astype(np.int32))
    kw = {} if p.get("sign_mode") is None else {"sign_mode": p["sign_mode"]}
    dense = Dense(weights=p["weights"], weight_exp=p["weight_exp"], num_weight_bits=p["num_weight_bits"], **kw)
    lif = LIF(shape=(n_out,), du=p["du"], dv=p["dv"], vth=p["vth"], bias_mant=p["bias_mant"], bias_exp=p["bias_exp"])
    src.s_out.connect(dense.s_in)
    dense.a_out.connect(lif.a_in)
    mons = [Monitor(), Monitor(), Monitor()]
    mons[0].probe(lif.s_out, t_len)
    mons[1].probe(lif.u, t_len)
    mons[2].probe(lif.v, t_len)
    try:
        lif.run(RunSteps(num_steps=t_len), Loihi2SimCfg(select_tag="fixed_pt"))
        data = [np.asarray(m.get_data()[lif.name][k]) for m, k in zip(mons, ("s_out", "u", "v"))]
    finally:
        lif.stop()
    return tuple(np.rint(d).astype(np.int64) for d in data)  # Monitor returns floats of exact integers


def _sim_dense_lif(graph, spikes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The simulator's kernels over the converted graph, recording the LIF state every step."""
    x_node, dense, lif = (graph.node(n) for n in ("x", "dense0", "lif0"))
    st_x, st_d, st_l = (kernels.init_state(n, 1) for n in (x_node, dense, lif))
    s_rec, u_rec, v_rec = [], [], []
    for t in range(spikes.shape[0]):
        x = kernels.step_input(x_node, spikes[None, t].astype(float), st_x)
        a = kernels.step(dense, {"in": x}, st_d)
        s = kernels.step(lif, {"in": a}, st_l)
        s_rec.append(s[0])
        u_rec.append(st_l["u"][0].copy())
        v_rec.append(st_l["v"][0].copy())
    return np.array(s_rec), np.array(u_rec), np.array(v_rec)


def _random_params(rng: np.random.Generator, nwb: int, mode: str, du: int, dv: int) -> dict:
    w = rng.integers(-256, 256, (N_OUT, N_IN))
    if mode == "excitatory":
        w = np.abs(w)
    elif mode == "inhibitory":
        w = -np.abs(w)
    return {
        "weights": w, "weight_exp": int(rng.integers(-3, 4)), "num_weight_bits": nwb, "du": du, "dv": dv,
        "vth": int(rng.integers(0, 600)), "bias_mant": rng.integers(-4096, 4096, N_OUT),
        "bias_exp": rng.integers(0, 8, N_OUT),
    }


CASES = [  # (num_weight_bits, sign mode, du, dv): every precision, every sign mode, edge decays
    (1, "mixed", 0, 4095), (2, "excitatory", 4095, 0), (3, "inhibitory", 0, 0), (4, "mixed", 4095, 4095),
    (5, "excitatory", 0, 4095), (6, "mixed", 1234, 0), (7, "inhibitory", 4095, 321), (8, "mixed", 0, 0),
]


@needs_lava
@pytest.mark.parametrize("nwb,mode,du,dv", CASES)
def test_lava_dense_lif_matches_simulator(nwb: int, mode: str, du: int, dv: int) -> None:
    rng = np.random.default_rng(100 + nwb)
    p = _random_params(rng, nwb, mode, du, dv)
    spikes = (rng.random((T, N_IN)) < 0.4).astype(np.int64)
    s, u, v = _lava_dense_lif(spikes, p)
    graph = from_lava_dense_lif(**p)
    s2, u2, v2 = _sim_dense_lif(graph, spikes)
    np.testing.assert_array_equal(s2, s)
    np.testing.assert_array_equal(u2, u)
    np.testing.assert_array_equal(v2, v)


@needs_lava
def test_current_wraps_and_voltage_saturates_as_lava() -> None:
    """Inputs near the converter's bound: u wraps every few steps, v hits +-(2^23 - 1)."""
    w = np.full((3, 64), 250)
    w[1] = -250
    w[2, :32] = 200
    p = {"weights": w, "weight_exp": 4, "num_weight_bits": 8, "du": 0, "dv": 0, "vth": 131071,
         "bias_mant": np.array([0, 0, 4095]), "bias_exp": np.array([0, 0, 7]), "sign_mode": None}
    spikes = np.ones((24, 64), np.int64)
    spikes[::5] = 0
    s, u, v = _lava_dense_lif(spikes, p)
    graph = from_lava_dense_lif(**p)
    s2, u2, v2 = _sim_dense_lif(graph, spikes)
    assert np.abs(u).max() > 2 ** 22 and (np.diff(np.sign(u[:, 0])) != 0).any(), "test should exercise the wrap"
    assert np.abs(v).max() == 2 ** 23 - 1, "test should exercise the saturation"
    np.testing.assert_array_equal(u2, u)
    np.testing.assert_array_equal(v2, v)
    np.testing.assert_array_equal(s2, s)


@needs_lava
@pytest.mark.parametrize("native", [True, False])
def test_converted_graph_on_the_backend(native: bool) -> None:
    """Two Dense+LIF layers through load/run: Lava's own Processes (native) or neurocompile's, vs simulator."""
    from neurocompile.backends import lava as nl
    from neurocompile.backends.lava.compare import compare, simulate_reference

    rng = np.random.default_rng(7)
    layers = [
        {"weights": rng.integers(-256, 256, (8, N_IN)), "weight_exp": 1, "num_weight_bits": 6, "du": 4095, "dv": 300,
         "vth": 40, "bias_mant": rng.integers(-100, 100, 8), "bias_exp": 2},
        {"weights": rng.integers(0, 256, (4, 8)), "weight_exp": 0, "num_weight_bits": 8, "du": 0, "dv": 4095,
         "vth": 90, "bias_mant": 3, "bias_exp": 0},
    ]
    graph = from_lava_layers(layers)
    x = (rng.random((2, 25, N_IN)) < 0.5).astype(float)
    net = nl.load(graph, native=native)
    kinds = set(net.plan.values())
    assert ({"lava.Dense", "lava.LIF"} <= kinds) == native
    res = nl.run(net, x)
    cmp = compare(graph, res, simulate_reference(graph, x))
    assert cmp.equal, str(cmp)


def test_weight_mantissa_follows_lava_truncation() -> None:
    w = np.array([[255, -256, 3, -3, 1, -1]])
    m, k, mode = lava_weight_mantissa(w, 8)
    assert (mode, k) == ("mixed", 1) and (m << k).tolist() == [[254, -256, 2, -4, 0, -2]]
    m, k, mode = lava_weight_mantissa(-np.abs(w), 5)  # inhibitory: magnitude truncation (toward 0)
    assert (mode, k) == ("inhibitory", 3) and (m << k).tolist() == [[-248, -248, 0, 0, 0, 0]]
    m, k, mode = lava_weight_mantissa(np.array([[300, 7]]), 1)  # excitatory clip to 255, keep the top bit
    assert (mode, k) == ("excitatory", 7) and (m << k).tolist() == [[128, 0]]


def test_converter_rejects_what_lava_cannot_compute_exactly() -> None:
    with pytest.raises(UnsupportedOpError, match="int32"):
        from_lava_dense_lif(np.full((2, 64), 255), weight_exp=6)
    with pytest.raises(UnsupportedOpError, match="du"):
        from_lava_dense_lif(np.ones((2, 2)), du=4096)
    with pytest.raises(UnsupportedOpError, match="integers"):
        from_lava_dense_lif(np.full((2, 2), 0.5))
    g = from_lava_dense_lif(np.ones((3, 2), np.int64), vth=5)
    assert isinstance(g.node("lif0"), hw.QLavaLIF) and g.node("dense0").delay == 1


@needs_lava
def test_two_spike_sources_into_lava_dense_are_summed() -> None:
    """Two LIF populations into one Lava Dense: Lava sums the connections; the sum (up to 2) must stay graded."""
    from neurocompile.backends import lava as nl
    from neurocompile.backends.lava.compare import compare, simulate_reference

    rng = np.random.default_rng(21)
    g = from_lava_layers([{"weights": rng.integers(0, 256, (6, N_IN)), "du": 4095, "dv": 0, "vth": 2}])
    g2 = from_lava_layers([{"weights": rng.integers(0, 256, (6, N_IN)), "du": 4095, "dv": 0, "vth": 3}])
    g.add("dense0b", g2.node("dense0"), "x")
    g.add("lif0b", g2.node("lif0"), "dense0b")
    c = from_lava_layers([{"weights": rng.integers(-256, 256, (4, 6)), "du": 100, "dv": 100, "vth": 1}])
    g.add("dense1", c.node("dense0"), ["lif0", "lif0b"])
    g.add("lif1", c.node("lif0"), "dense1")
    g.outputs = ["lif1"]
    x = (rng.random((1, 30, N_IN)) < 0.5).astype(float)
    net = nl.load(g)
    assert net.plan["dense1"] == "lava.Dense"
    ref = simulate_reference(g, x)
    assert ((ref.traces["lif0"] + ref.traces["lif0b"]) == 2).any(), "test needs coincident spikes"
    cmp = compare(g, nl.run(net, x), ref)
    assert cmp.equal, str(cmp)


@needs_lava
def test_load_from_a_saved_graph_directory(tmp_path) -> None:
    """QLavaLIF survives the serializer; ``load`` takes a saved graph directory as well as an artifact."""
    from neurocompile.backends import lava as nl
    from neurocompile.backends.lava.compare import compare, simulate_reference
    from neurocompile.errors import BackendError
    from neurocompile.ir.serialize import save_graph

    g = from_lava_dense_lif(np.arange(-24, 24).reshape(4, N_IN), weight_exp=2, du=4095, dv=100, vth=3,
                            bias_mant=[1, 2, 3, 4], bias_exp=2)
    save_graph(g, tmp_path / "g")
    net = nl.load(tmp_path / "g")
    x = np.ones((1, 10, N_IN))
    cmp = compare(net.graph, nl.run(net, x), simulate_reference(g, x))
    assert cmp.equal, str(cmp)
    with pytest.raises(BackendError, match="does not exist"):
        nl.load(tmp_path / "missing")
