"""Energy model: hand-made counts give by-hand sums of the constants read straight from the TOML files."""

from __future__ import annotations

import math

import pytest
import tomli

from neurocompile.cost.energy import estimate
from neurocompile.errors import ArtifactError
from neurocompile.sim.counters import LayerCounts, RunCounts
from neurocompile.target import load_target, targets_dir


def _raw(name: str) -> dict:
    """Constants read from the TOML file itself, not through the code under test."""
    raw = tomli.loads((targets_dir() / f"{name}.toml").read_text())
    return {f"{sec}.{k}": v["value"] for sec, tab in raw.items() for k, v in tab.items() if isinstance(v, dict)}


def _counts() -> RunCounts:
    dense = LayerCounts(
        name="mix", kind="QDense", core_ids=(0, 1), neurons=100, synapses=4000,
        spikes=0, graded_messages=300, payload_bits=300 * 24,
        synops_dense=4000 * 20, synops_effective_mac=1500, synops_effective_ac=2500,
        neuron_updates=1200, compartment_updates=100 * 20, state_update_ops=0, lut_ops=40,
        messages=50, messages_local=10, hops=120, hops_ns=30, saturations=2, steps=20, samples=2,
    )
    lif = LayerCounts(
        name="lif", kind="QLIF", core_ids=(2,), neurons=64, synapses=0,
        spikes=90, neuron_updates=700, compartment_updates=64 * 20, state_update_ops=256,
        messages=20, messages_local=20, hops=0, hops_ns=0, steps=20, samples=2,
    )
    return RunCounts(layers=[dense, lif], samples=2, steps_per_sample=10)


@pytest.mark.parametrize("name", ["loihi1", "loihi2", "kapoho-point", "hala-point"])
def test_dynamic_energy_equals_hand_sum(name):
    c = _raw(name)
    r = estimate(_counts(), load_target(name))
    pj = (
        # mix layer: dense-format look-ups, graded ops, accesses, updates, 300 graded messages generated
        2500 * c["energy.synaptic_op_pj"] + 1500 * c["energy.synaptic_op_graded_pj"]
        + 2000 * c["energy.neuron_access_pj"] + 1200 * c["energy.neuron_update_pj"] + 300 * c["energy.spike_out_pj"]
        + 40 * c["energy.lut_op_pj"]
        + 50 * c["energy.message_out_pj"] + 90 * c["energy.hop_ew_pj"] + 30 * c["energy.hop_ns_pj"]
        # lif layer
        + 1280 * c["energy.neuron_access_pj"] + 700 * c["energy.neuron_update_pj"] + 90 * c["energy.spike_out_pj"]
        + 256 * c["energy.state_update_op_pj"] + 20 * c["energy.message_out_pj"]
    )
    expected_dyn = pj * 1e-12 / 2  # two samples
    assert r.dynamic_energy_j == pytest.approx(expected_dyn, rel=1e-12)
    assert sum(le.energy_j for le in r.layers) == pytest.approx(expected_dyn, rel=1e-12)
    assert sum(r.dynamic_breakdown_j.values()) == pytest.approx(expected_dyn, rel=1e-12)
    assert sum(r.categories_j.values()) == pytest.approx(expected_dyn, rel=1e-12)
    assert sum(le.energy_share for le in r.layers) == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["loihi1", "loihi2", "hala-point"])
def test_latency_and_static_energy_equal_hand_model(name):
    c = _raw(name)
    r = estimate(_counts(), load_target(name))
    steps = 20  # 2 samples x 10 steps
    mix_soma = (2000 * c["timing.neuron_access_ns"] + 1200 * c["timing.neuron_update_ns"]
                + 300 * c["timing.spike_out_ns"] + 40 * c["timing.lut_op_ns"] + 50 * c["timing.message_out_ns"])
    mix_recv = 2500 * c["timing.synaptic_op_ns"] + 1500 * c["timing.synaptic_op_graded_ns"]
    lif_soma = (1280 * c["timing.neuron_access_ns"] + 700 * c["timing.neuron_update_ns"]
                + 90 * c["timing.spike_out_ns"] + 256 * c["timing.state_update_op_ns"]
                + 20 * c["timing.message_out_ns"])
    core0 = core1 = max(mix_soma, mix_recv) / 2 / steps  # split evenly over its two cores
    core2 = lif_soma / steps
    compute = max(core0, core1, core2)
    noc = (90 * c["timing.hop_ew_ns"] + 30 * c["timing.hop_ns_ns"]) / 70  # mean path of the 70 messages
    # 3 cores: 1 tile on loihi1 / loihi2 (4 and 1 cores per tile: 1 and 3 tiles); hala-point: flat 1.8 us
    tiles = -(-3 // int(c["system.cores_per_tile"]))
    barrier = (c["timing.barrier_ns"] if tiles == 1 else c["timing.barrier_2_tiles_ns"] if tiles < 4
               else c["timing.barrier_4_tiles_ns"])
    step_ns = compute + noc + barrier
    assert r.latency_per_step_s == pytest.approx(step_ns * 1e-9, rel=1e-12)
    assert r.latency_per_sample_s == pytest.approx(step_ns * 1e-9 * 10, rel=1e-12)
    assert r.latency_breakdown_ns["compute_ns"] == pytest.approx(compute)
    assert r.latency_breakdown_ns["barrier_ns"] == pytest.approx(barrier)
    assert r.cores_used == 3 and r.chips_used == 1 and r.tiles_used == tiles
    static = c["energy.static_power_w"] * 1 * step_ns * 1e-9 * 10
    assert r.static_energy_j == pytest.approx(static, rel=1e-12)
    assert r.static_energy_all_chips_j == pytest.approx(static * c["system.chips"], rel=1e-12)
    assert r.energy_per_sample_j == pytest.approx(r.dynamic_energy_j + static, rel=1e-12)
    util = {cl.core: cl.utilisation for cl in r.cores}
    assert util[2] == pytest.approx(core2 / step_ns)


def test_barrier_grows_with_tiles_as_sanafe_table():
    t = load_target("loihi1").timing
    assert [t.barrier_for_tiles(n) for n in (1, 2, 3, 4, 28, 29, 32)] == [600, 1000, 1000, 1400, 1400, 1800, 1800]


def test_conventions_and_conventional_processor():
    c = _raw("loihi2")
    r = estimate(_counts(), load_target("loihi2"))
    mix = r.conventions["mixing_only"]
    ann = 80000 / 2 * c["convention.mac_pj"] * 1e-12
    snn = (2500 / 2 * c["convention.ac_pj"] + 1500 / 2 * c["convention.mac_pj"]) * 1e-12
    assert mix["ann_energy_j"] == pytest.approx(ann)
    assert mix["snn_energy_j"] == pytest.approx(snn)
    assert mix["ratio_ann_over_snn"] == pytest.approx(ann / snn)
    st = r.conventions["with_state_updates"]
    state = 256 / 2 * c["convention.mac_pj"] * 1e-12
    assert st["ann_energy_j"] == pytest.approx(ann + state)
    assert st["snn_energy_j"] == pytest.approx(snn + state)

    cp = r.conventional_processor
    macs = 80000 / 2 + 256 / 2
    assert cp["float_macs_per_sample"] == pytest.approx(macs)
    assert cp["energy_per_sample_j"] == pytest.approx(macs * c["conventional.float_mac_pj"] * 1e-12)
    fetch = c["conventional.sram_access_pj"] * c["conventional.weight_bits"] / c["conventional.sram_word_bits"]
    assert cp["energy_with_weight_fetch_per_sample_j"] == pytest.approx(
        macs * (c["conventional.float_mac_pj"] + fetch) * 1e-12)
    assert cp["ratio_vs_target"] == pytest.approx(cp["energy_per_sample_j"] / r.energy_per_sample_j)

    r2 = estimate(_counts(), load_target("loihi2"), float_macs_per_sample=1_000_000)
    expected = 1e6 * c["conventional.float_mac_pj"] * 1e-12
    assert r2.conventional_processor["energy_per_sample_j"] == pytest.approx(expected)


def test_report_dict_has_the_documented_keys():
    d = estimate(_counts(), load_target("loihi2")).to_dict()
    for key in ("target", "energy_per_sample_j", "latency_per_step_s", "latency_per_sample_s", "estimate_basis",
                "is_estimate", "layers", "conventions", "conventional_processor", "static_energy_j",
                "dynamic_energy_j", "estimate_statement", "constants", "cores"):
        assert key in d, key
    for key in ("name", "energy_j", "synaptic_ops", "neuron_updates", "spikes", "spike_rate"):
        assert key in d["layers"][0], key
    assert d["is_estimate"] is True
    assert d["estimate_statement"].startswith("Loihi 2 energy is an ESTIMATE")
    assert all(c["source"] for c in d["constants"])


def test_unplaced_layers_get_virtual_cores():
    lc = LayerCounts(name="ro", kind="QDense", neurons=10, synapses=100, synops_effective_ac=100,
                     compartment_updates=100, steps=10, samples=1)
    r = estimate(RunCounts(layers=[lc], samples=1, steps_per_sample=10), load_target("loihi1"))
    assert r.cores_used == 1 and r.cores[0].virtual and r.cores[0].core < 0
    assert r.latency_breakdown_ns["compute_ns"] > 0


def test_estimate_rejects_empty_run():
    with pytest.raises(ValueError):
        estimate(RunCounts(layers=[], samples=0, steps_per_sample=10), load_target("loihi2"))


# ---- counters ------------------------------------------------------------------------------------------------


def test_layer_counts_add():
    a = _counts().layers[0]
    s = a + a
    assert s.spikes == 2 * a.spikes and s.synops_dense == 2 * a.synops_dense
    assert s.steps == 40 and s.samples == 4
    assert s.neurons == a.neurons and s.core_ids == a.core_ids  # static fields unchanged
    with pytest.raises(ValueError, match="different layers"):
        a + _counts().layers[1]


def test_run_counts_add_and_energy_is_per_sample_invariant():
    r = _counts()
    rr = r + r
    assert rr.samples == 4 and rr.layers[0].spikes == 2 * r.layers[0].spikes
    t = load_target("loihi2")
    assert estimate(rr, t).energy_per_sample_j == pytest.approx(estimate(r, t).energy_per_sample_j)


def test_per_core_aggregation():
    pc = _counts().per_core()
    assert sorted(pc) == [0, 1, 2]
    assert pc[0]["synops_effective_ac"] == pytest.approx(1250)
    assert pc[1]["neurons"] == pytest.approx(50)
    assert pc[2]["spikes"] == pytest.approx(90)
    total = sum(v["messages"] for v in pc.values())
    assert total == pytest.approx(70)


def test_per_core_uses_core_neurons_proportion():
    lc = LayerCounts(name="x", kind="QLIF", core_ids=(3, 4), core_neurons=(96, 32), neurons=128, spikes=400)
    pc = RunCounts(layers=[lc], samples=1, steps_per_sample=1).per_core()
    assert pc[3]["spikes"] == pytest.approx(300) and pc[4]["spikes"] == pytest.approx(100)


def test_counts_validation():
    with pytest.raises(TypeError):
        LayerCounts(name="x", kind="QLIF", spikes=1.5)
    with pytest.raises(ValueError):
        LayerCounts(name="x", kind="QLIF", spikes=-1)
    with pytest.raises(ValueError):
        LayerCounts(name="x", kind="QLIF", messages=1, messages_local=2)
    with pytest.raises(ValueError, match="duplicate"):
        RunCounts(layers=[LayerCounts(name="x", kind="a"), LayerCounts(name="x", kind="a")], samples=1,
                  steps_per_sample=1)


def test_counts_accept_numpy_integers():
    np = pytest.importorskip("numpy")
    lc = LayerCounts(name="x", kind="QLIF", spikes=np.int64(5), core_ids=(np.int32(1),))
    assert type(lc.spikes) is int and lc.core_ids == (1,)


def test_counts_round_trip_and_metrics():
    r = _counts()
    d = r.to_dict()
    assert RunCounts.from_dict(d) == r
    assert r.cores_used == 3
    m = r.metrics()
    assert m["spikes_per_sample"] == pytest.approx(45)
    slots = 100 * 20 + 64 * 20
    assert m["activation_sparsity"] == pytest.approx(1 - (90 + 300) / slots)
    assert m["synops_dense_per_sample"] == pytest.approx(40000)
    assert math.isclose(m["spike_rate"], 90 / slots)
    with pytest.raises(ArtifactError, match="unknown key"):
        RunCounts.from_dict({**d, "bogus": 1})
    bad = {**d, "layers": [{**d["layers"][0], "spikes": -3}]}
    with pytest.raises(ArtifactError):
        RunCounts.from_dict(bad)
