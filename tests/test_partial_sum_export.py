"""A QDense of fan-in 6,000 (over loihi2's 4,096 input axons) exports through partial sums, ``check --json``
lists the split, and the simulator's output is bit-equal to the reference runner; loihi1 (binary spikes) still
refuses it."""

from __future__ import annotations

import json

import numpy as np
import pytest

nir = pytest.importorskip("nir")

from click.testing import CliRunner  # noqa: E402

from neurocompile.artifact import load_artifact  # noqa: E402
from neurocompile.cli import main  # noqa: E402
from neurocompile.mapping.placement import place  # noqa: E402
from neurocompile.sim import reference  # noqa: E402
from neurocompile.sim.engine import simulate  # noqa: E402

DT = 1e-3
FAN_IN, HIDDEN = 6000, 16


def wide_snn() -> nir.NIRGraph:
    rng = np.random.default_rng(0)
    w1 = rng.integers(-2, 3, (HIDDEN, FAN_IN)).astype(np.float32)
    w2 = rng.integers(-2, 3, (4, HIDDEN)).astype(np.float32)
    tau = DT / 0.5

    def lif(n: int) -> nir.LIF:
        return nir.LIF(tau=np.full(n, tau), r=np.full(n, tau / DT), v_leak=np.zeros(n), v_threshold=np.full(n, 2.0),
                       v_reset=np.zeros(n))

    nodes = {"in": nir.Input(input_type=np.array([FAN_IN])), "fc0": nir.Linear(weight=w1), "n0": lif(HIDDEN),
             "fc1": nir.Linear(weight=w2), "n1": lif(4), "out": nir.Output(output_type=np.array([4]))}
    edges = [("in", "fc0"), ("fc0", "n0"), ("n0", "fc1"), ("fc1", "n1"), ("n1", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": DT})


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wide")
    nir.write(str(tmp / "wide.nir"), wide_snn())
    x = (np.random.default_rng(1).random((3, 6, FAN_IN)) < 0.02).astype(np.float32)
    np.savez(tmp / "cal.npz", x=x)
    return tmp, x


def _export(tmp, target: str):
    out = tmp / f"wide.{target}"
    return out, CliRunner().invoke(main, ["export", str(tmp / "wide.nir"), "--target", target, "--nir-exact",
                                          "--calibration", str(tmp / "cal.npz"), "-o", str(out), "--force"])


def test_fan_in_6000_exports_to_loihi2_with_partial_sums(exported) -> None:
    tmp, x = exported
    out, r = _export(tmp, "loihi2")
    assert r.exit_code == 0, r.output
    art = load_artifact(out)
    g = art.int_graph
    assert np.count_nonzero(g.node("fc0").weight, axis=1).max() > 4096
    rep = CliRunner().invoke(main, ["check", str(out), "--json"])
    assert rep.exit_code == 0, rep.output
    fit = json.loads(rep.output)
    assert fit["fits"] and fit["neurons"]["n0"]["fan_in_max"] > 4096
    # 6,000 columns over 4,096 axons: two chunks of 3,000, two partials per neuron of n0
    assert fit["partial_sums"] == [{"node": "n0", "neurons_split": HIDDEN, "parts": 2 * HIDDEN, "max_parts": 2,
                                    "denses": ["fc0"]}]
    assert all(c["input_axons"] <= 4096 for c in fit["per_core"])
    p = place(g, art.target_spec)
    assert p.cores_used == fit["cores_used"] and "n0:partial:fc0" in p.roles
    # the integer semantics are unchanged: the simulator equals the reference runner bit for bit
    sim = simulate(g, x, target=art.target_spec, record=True)
    ref = reference.run(g, x)
    for o in g.outputs:
        assert np.array_equal(sim.outputs[o], ref.outputs[o])
    assert 0 < sim.counts.layer("n0").partial_messages <= 2 * HIDDEN * x.shape[0] * x.shape[1]


def test_binary_spike_target_still_refuses_it(exported) -> None:
    tmp, _ = exported
    out, r = _export(tmp, "loihi1")
    assert r.exit_code != 0 and not out.exists()
    assert "fan-in" in r.output and "graded messages" in r.output
