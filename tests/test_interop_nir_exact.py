"""Exact NIR import of integer-weight spiking networks; mapping modes; plain SNNs pass loihi1's message rule."""

from __future__ import annotations

import json

import numpy as np
import pytest

nir = pytest.importorskip("nir")

from neurocompile.errors import NeurocompileError, UnsupportedOpError  # noqa: E402
from neurocompile.interop.nir_exact import from_nir_exact  # noqa: E402
from neurocompile.ir import hw  # noqa: E402
from neurocompile.mapping.placement_modes import place_as, tiles_used  # noqa: E402
from neurocompile.passes.checks import check_graph  # noqa: E402
from neurocompile.sim.engine import simulate  # noqa: E402
from neurocompile.target import load_target  # noqa: E402

DT = 1e-3


def lif_net(w1, w2, vth=1.1, retention=0.5, reset=None, kind="LIF"):
    tau = DT / (1.0 - retention)
    nodes = {"in": nir.Input(input_type=np.array([w1.shape[1]]))}
    edges = []
    prev = "in"
    for i, w in enumerate((w1, w2)):
        n = w.shape[0]
        nodes[f"fc{i}"] = nir.Linear(weight=np.asarray(w, np.float32))
        md = {} if reset is None else {"reset": reset}
        if kind == "IF":
            nodes[f"n{i}"] = nir.IF(r=np.full(n, 1.0 / DT), v_threshold=np.full(n, vth), v_reset=np.zeros(n),
                                    metadata=md)
        else:
            nodes[f"n{i}"] = nir.LIF(tau=np.full(n, tau), r=np.full(n, tau / DT), v_leak=np.zeros(n),
                                     v_threshold=np.full(n, vth), v_reset=np.zeros(n), metadata=md)
        edges += [(prev, f"fc{i}"), (f"fc{i}", f"n{i}")]
        prev = f"n{i}"
    nodes["out"] = nir.Output(output_type=np.array([w2.shape[0]]))
    edges.append((prev, "out"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": DT})


W1 = np.array([[1, 2, -1], [3, -2, 1]])
W2 = np.array([[2, -1], [1, 1]])


def test_weights_kept_threshold_in_neuron_and_range_sized():
    g = from_nir_exact(lif_net(W1, W2, vth=0.1, retention=15 / 16))
    d, lif = g.node("fc0"), g.node("n0")
    assert isinstance(d, hw.QDense) and np.array_equal(d.weight, W1) and (d.shift == -6).all()  # not re-quantised
    assert d.delay == 1  # Loihi's one-step synaptic delay by default
    assert isinstance(lif, hw.QLIF) and lif.decay == 3840 and lif.compare == ">" and lif.reset == "zero"
    assert lif.vth.tolist() == [6, 6]  # floor(0.1 * 64): v > 0.1 exactly when v_int > 6 (v a multiple of 1/64)
    # state range: threshold + largest input (4 x 64) over the leak's memory (16 steps): no saturation possible
    assert lif.state_bits >= int(np.ceil(np.log2(6 + 4 * 64 * 16))) + 1
    assert g.meta["source"]["synaptic_delay"] == 1
    assert from_nir_exact(lif_net(W1, W2), synaptic_delay=0).node("fc0").delay == 0


def test_exact_import_matches_a_reference_float_run_spike_for_spike():
    rng = np.random.default_rng(3)
    w1, w2 = rng.integers(-3, 5, size=(8, 6)), rng.integers(-3, 5, size=(5, 8))
    x = (rng.random((40, 6)) < 0.4).astype(np.float64)
    for reset in ("zero", "subtract", "none"):
        g = from_nir_exact(lif_net(w1, w2, vth=3.0, retention=0.75, reset=reset))
        r = simulate(g, x[None], record=True)
        # reference: Loihi-style float model (one-step delay per layer, leak then truncation to 1/64)
        v1, v2 = np.zeros(8), np.zeros(5)
        s_in_prev, s1_prev = np.zeros(6), np.zeros(8)
        for t in range(40):
            v1 = np.trunc(v1 * 0.75 * 64) / 64 + w1 @ s_in_prev
            s1 = v1 > 3.0
            v2 = np.trunc(v2 * 0.75 * 64) / 64 + w2 @ s1_prev
            s2 = v2 > 3.0
            for v, s in ((v1, s1), (v2, s2)):
                if reset == "zero":
                    v[s] = 0
                elif reset == "subtract":
                    v[s] -= 3.0
            assert np.array_equal(r.trace["n0"][0, t] != 0, s1) and np.array_equal(r.trace["n1"][0, t] != 0, s2)
            s_in_prev, s1_prev = x[t], s1.astype(np.float64)
        assert sum(r.saturations.values()) == 0


def test_refuses_what_is_not_exact():
    with pytest.raises(UnsupportedOpError, match="not integers"):
        from_nir_exact(lif_net(W1 * 0.5, W2))
    with pytest.raises(UnsupportedOpError, match="multiple"):
        from_nir_exact(lif_net(W1, W2, retention=0.3))
    with pytest.raises(UnsupportedOpError, match="reset"):
        from_nir_exact(lif_net(W1, W2, reset="bounce"))
    with pytest.raises(NeurocompileError, match="synaptic_delay"):
        from_nir_exact(lif_net(W1, W2), synaptic_delay=2)


def test_if_and_cubalif_import():
    g = from_nir_exact(lif_net(W1, W2, kind="IF"))
    assert g.node("n0").decay == 4096  # no leak
    n = 2
    cuba = nir.NIRGraph(
        nodes={"in": nir.Input(input_type=np.array([3])), "fc": nir.Linear(weight=W1.astype(np.float32)),
               "c": nir.CubaLIF(tau_syn=np.full(n, 2 * DT), tau_mem=np.full(n, 4 * DT), r=np.full(n, 4.0),
                                v_leak=np.zeros(n), v_threshold=np.full(n, 2.0), v_reset=np.zeros(n),
                                w_in=np.full(n, 2.0)),
               "out": nir.Output(output_type=np.array([n]))},
        edges=[("in", "fc"), ("fc", "c"), ("c", "out")], metadata={"dt": DT})
    g = from_nir_exact(cuba)
    bank = g.node("c.syn")
    assert isinstance(bank, hw.QModeBank) and bank.a_re[:, 0].tolist() == [2048, 2048]  # current trace decays 1/2
    assert bank.b_re[:, 0].tolist() == [1, 1]  # w_in (1 - 1/2) = 1
    assert g.node("c").decay == 3072
    r = simulate(g, np.ones((1, 6, 3)), record=True)
    assert r.trace["c"].shape == (1, 6, 2)


def test_plain_snn_passes_loihi1_message_rule():
    g = from_nir_exact(lif_net(W1, W2))
    t = load_target("loihi1")
    from neurocompile.passes.checks import Precision

    bad = [v for v in check_graph(g, Precision.from_target(t)) if v.rule == "message-bits"]
    assert bad == []


def test_mapping_modes(tmp_path):
    g = from_nir_exact(lif_net(W1, W2))
    t = load_target("loihi1")
    assert place_as(g, t, "packed").cores_used == 1
    p = place_as(g, t, "layer-per-core")
    assert p.node_cores["n0"] == (0,) and p.node_cores["n1"] == (1,) and p.cores_used == 2
    assert p.node_cores["fc1"] == (1,)  # a synapse-only dense lives with the neurons it feeds
    f = tmp_path / "place.json"
    f.write_text(json.dumps({"n0": 9, "n1": [38, 127]}))
    q = place_as(g, t, str(f))
    assert q.cores_used == 3 and q.node_cores["n1"] == (38, 127)
    assert tiles_used(q) == 4  # tiles 0 (host port), 2, 9, 31
    f.write_text(json.dumps({"n0": 1}))
    with pytest.raises(NeurocompileError, match="node 'n1' is not placed"):
        place_as(g, t, str(f))
    with pytest.raises(NeurocompileError, match="unknown mapping"):
        place_as(g, t, "spread")


def test_cli_exports_an_integer_nir_snn_to_loihi1_exactly(tmp_path):
    from click.testing import CliRunner

    from neurocompile.artifact import load_artifact
    from neurocompile.cli import main

    nir.write(str(tmp_path / "snn.nir"), lif_net(W1, W2, vth=0.1))
    np.savez(tmp_path / "cal.npz", x=(np.random.default_rng(0).random((4, 10, 3)) < 0.3).astype(np.float32))
    out = tmp_path / "snn.loihi1"
    r = CliRunner().invoke(main, ["export", str(tmp_path / "snn.nir"), "--target", "loihi1", "--nir-exact",
                                  "--calibration", str(tmp_path / "cal.npz"), "-o", str(out)])
    assert r.exit_code == 0, r.output
    g = load_artifact(out).int_graph
    assert np.array_equal(g.node("fc0").weight, W1) and g.node("n0").vth.tolist() == [6, 6]
    assert g.node("fc0").delay == 1


@pytest.mark.lava
def test_no_reset_lif_runs_bit_exactly_in_lava():
    from neurocompile.backends import lava as nl

    if not nl.lava_available():
        pytest.skip("lava-nc 0.10.0 not importable")
    g = from_nir_exact(lif_net(W1, W2, vth=1.0, reset="none"))
    x = (np.random.default_rng(2).random((2, 12, 3)) < 0.5).astype(np.float64)
    res = nl.simulate_lava(g, x, batch=2, record=True)
    assert res.lava_comparison.equal
    assert res.spikes == simulate(g, x).spikes
