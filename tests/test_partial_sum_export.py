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
    text = CliRunner().invoke(main, ["check", str(out)]).output
    assert "neurons split into partial sums" in text and "fc0" in text
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


def test_over_the_partial_sum_limit_is_refused_in_one_line(tmp_path) -> None:
    from neurocompile.target import targets_dir

    text = (targets_dir() / "loihi2.toml").read_text()
    toml = tmp_path / "toy4.toml"
    toml.write_text(text.replace("input_axons = { value = 4096,", "input_axons = { value = 4,"))
    dt = DT

    def snn(fan_in: int) -> nir.NIRGraph:
        tau = dt / 0.5
        nodes = {"in": nir.Input(input_type=np.array([fan_in])),
                 "fc0": nir.Linear(weight=np.ones((2, fan_in), np.float32)),
                 "n0": nir.LIF(tau=np.full(2, tau), r=np.full(2, tau / dt), v_leak=np.zeros(2),
                               v_threshold=np.full(2, 2.0), v_reset=np.zeros(2)),
                 "out": nir.Output(output_type=np.array([2]))}
        return nir.NIRGraph(nodes=nodes, edges=[("in", "fc0"), ("fc0", "n0"), ("n0", "out")], metadata={"dt": dt})

    outputs = {}
    for fan_in in (16, 17):  # 4 chunks of 4 fit a 4-axon soma; 5 do not
        nir.write(str(tmp_path / f"f{fan_in}.nir"), snn(fan_in))
        np.savez(tmp_path / f"cal{fan_in}.npz", x=np.ones((2, 3, fan_in), np.float32))
        r = CliRunner().invoke(main, ["export", str(tmp_path / f"f{fan_in}.nir"), "--target", str(toml),
                                      "--nir-exact", "--calibration", str(tmp_path / f"cal{fan_in}.npz"),
                                      "-o", str(tmp_path / f"out{fan_in}")])
        outputs[fan_in] = r
    assert outputs[16].exit_code == 0, outputs[16].output
    bad = outputs[17]
    assert bad.exit_code != 0 and not (tmp_path / "out17").exists()
    line = " ".join(bad.output.split())
    assert "[fan-in] node 'n0' needs 5 input axons of one soma after partial sums where the target allows 4" in line
