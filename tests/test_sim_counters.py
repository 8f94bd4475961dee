"""Activity counters equal hand counts on tiny networks; the energy estimate equals a by-hand sum of constants."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.sim.engine import simulate
from neurocompile.target import load_target


def arr(*v: int) -> np.ndarray:
    return np.array(v, np.int64)


def tiny_target():
    """Loihi 2 constants on a toy chip: 2 compartments per core, 2 cores per tile, tiles stacked north-south."""
    t = load_target("loihi2")
    return dataclasses.replace(
        t,
        core=dataclasses.replace(t.core, compartments=2),
        system=dataclasses.replace(t.system, chips=1, cores_per_chip=4, cores_per_tile=2, mesh_x=1, mesh_y=2),
    )


def spiking_net() -> Graph:
    """x(2) -> d1 (3x2) -> lif(3) -> d2 (2x3) -> acc(2) => head (2x2, host)."""
    g = Graph("counts")
    g.add("x", hw.QInput(size=2, out_scale=1.0, out_bits=8))
    g.add("d1", hw.QDense(weight=np.array([[1, 0], [2, -1], [0, 0]]), bias=arr(0, 0, 0), shift=arr(0, 0, 0),
                          out_bits=8), "x")
    g.add("lif", hw.QLIF(decay=0, vth=arr(1, 1, 1)), "d1")
    g.add("d2", hw.QDense(weight=np.array([[1, 1, 0], [0, 1, 1]]), bias=arr(0, 0), shift=arr(0, 0), out_bits=8),
          "lif")
    g.add("acc", hw.QAccumulate(size=2, out_bits=16), "d2")
    g.add("head", hw.QDense(weight=np.eye(2, dtype=np.int64), bias=arr(0, 0), shift=arr(0, 0), out_bits=0), "acc")
    g.inputs, g.outputs = ["x"], ["head"]
    return g


X = np.array([[[1, 0], [0, 0], [2, 1]]], np.float64)  # one sample, 3 steps


@pytest.mark.parametrize("arith", ["reference", "auto"])
def test_counts_equal_hand_counts(arith: str) -> None:
    g = spiking_net()
    r = simulate(g, X, target=tiny_target(), arith=arith)
    # d1 out: t0 (1, 2, 0); t1 0; t2 (2, 2*2 - 1 = 3, 0).  lif (decay 0, vth 1): spikes (1,1,0), 0, (1,1,0)
    # d2 out: (2, 1), 0, (2, 1); acc = (4, 2); head = (4, 2) -> class 0
    assert r.predictions.tolist() == [0]
    assert r.outputs["head"].tolist() == [[4, 2]]
    c = {lc.name: lc for lc in r.counts.layers}
    # placement: lif units 0, 1 on core 0 and unit 2 on core 1; acc unit 0 fills core 1, unit 1 on core 2
    assert (c["lif"].core_ids, c["lif"].core_neurons) == ((0, 1), (2, 1))
    assert (c["acc"].core_ids, c["acc"].core_neurons) == ((1, 2), (1, 1))
    assert (c["d1"].core_ids, c["d1"].core_neurons) == ((0, 1), (2, 1))  # its rows live with the lif neurons
    assert (c["d2"].core_ids, c["d2"].core_neurons) == ((1, 2), (1, 1))
    assert c["x"].core_ids == () and c["head"].core_ids == ()
    assert r.counts.cores_used == 3

    # input: non-zero values x0 at t0 and t2, x1 at t2 -> 3 graded messages of 8 bits; each reaches one core
    # (d1's rows 0, 1 on core 0): 3 host-to-chip messages from the host port on core 0's tile (0 hops)
    assert (c["x"].graded_messages, c["x"].payload_bits, c["x"].spikes) == (3, 24, 0)
    assert (c["x"].role, c["x"].messages, c["x"].hops) == ("host", 3, 0)
    assert (c["d1"].role, c["d1"].synapse_format, c["d1"].messages_in) == ("synapse", "dense", 3)
    assert (c["d2"].messages_in, c["lif"].messages_in, c["head"].role) == (6, 0, "host")
    # d1: 3 non-zero weights; dense ops 3 x 2 per step x 3 steps; graded inputs: x0 (fan-out 2) twice, x1
    # (fan-out 1) once -> 5 MACs.  A synapses-only dense sends no messages of its own.
    assert (c["d1"].synapses, c["d1"].synops_dense, c["d1"].synops_effective_mac, c["d1"].synops_effective_ac) == \
        (3, 18, 5, 0)
    assert (c["d1"].neurons, c["d1"].graded_messages, c["d1"].messages) == (0, 0, 0)
    # lif: 3 compartments x 3 steps; active when input or state non-zero: t0 2, t1 0, t2 2
    assert (c["lif"].neurons, c["lif"].compartment_updates, c["lif"].neuron_updates) == (3, 9, 4)
    assert (c["lif"].spikes, c["lif"].graded_messages, c["lif"].payload_bits) == (4, 0, 0)
    assert r.spikes_per_step["lif"].tolist() == [2, 0, 2]
    # messages: lif0 (core 0) -> d2 row 0 (core 1, same tile): 1 local; lif1 (core 0) -> rows 0, 1 (cores 1, 2):
    # 1 local + 1 to the next tile north-south (1 hop). Each spikes twice: 6 messages, 4 local, 2 hops (N-S).
    assert (c["lif"].messages, c["lif"].messages_local, c["lif"].hops, c["lif"].hops_ns) == (6, 4, 2, 2)
    # d2: 4 weights; 2 x 3 per step x 3 steps; binary inputs: lif0 (fan-out 1) x2 + lif1 (fan-out 2) x2 = 6 ACs
    assert (c["d2"].synapses, c["d2"].synops_dense, c["d2"].synops_effective_ac, c["d2"].synops_effective_mac) == \
        (4, 18, 6, 0)
    # acc: 2 compartments x 3 steps, all active (t1 has no input but a non-zero sum); one emission (4, 2) of 16 bits
    assert (c["acc"].neurons, c["acc"].compartment_updates, c["acc"].neuron_updates) == (2, 6, 6)
    assert (c["acc"].graded_messages, c["acc"].payload_bits, c["acc"].messages) == (2, 32, 0)
    # head (host): runs once per sample: 2 x 2 dense ops, 2 MACs (acc non-zero x fan-out 1), 2 logits
    assert (c["head"].steps, c["head"].synops_dense, c["head"].synops_effective_mac) == (1, 4, 2)
    assert (c["head"].graded_messages, c["head"].payload_bits, c["head"].neurons) == (2, 0, 0)
    assert all(lc.steps == 3 for n, lc in c.items() if n != "head")
    assert all(lc.samples == 1 and lc.saturations == 0 for lc in c.values())


def test_energy_equals_hand_sum_of_target_constants() -> None:
    from neurocompile.cost.energy import estimate

    tgt = tiny_target()
    r = simulate(spiking_net(), X, target=tgt)
    e = tgt.energy
    # chip totals from the hand counts above: look-ups: 6 binary (d2, dense format), 5 graded (d1); accesses
    # 9 + 6, updates 4 + 6; messages generated by compartments 4 spikes + 2 graded; messages 6 (lif) + 3 (host
    # input), received 3 + 6; hops 2, all north-south. The host decoder's 2 x 2 ops are host work.
    pj = (6 * e.synaptic_op_pj + 5 * e.synaptic_op_graded_pj
          + 15 * e.neuron_access_pj + 10 * e.neuron_update_pj + 6 * e.spike_out_pj
          + 9 * e.message_out_pj + 9 * e.message_in_pj
          + 0 * e.hop_ew_pj + 2 * e.hop_ns_pj)
    rep = estimate(r.counts, tgt)
    assert rep.dynamic_energy_j == pytest.approx(pj * 1e-12, rel=1e-12)
    assert rep.host["energy_per_sample_j"] == pytest.approx(4 * tgt.conventional.float_mac_pj * 1e-12)
    assert rep.host["layers"] == ["x", "head"] and rep.cores_used == 3
    assert sum(rep.categories_j.values()) == pytest.approx(rep.dynamic_energy_j)


@pytest.mark.parametrize("arith", ["reference", "int64", "auto"])
def test_ssm_lut_counts(arith: str) -> None:
    g = Graph("ssm")
    g.add("x", hw.QInput(size=1, out_scale=1.0, out_bits=8))
    g.add("bank", hw.QModeBank(a_re=np.array([[0, 2048]]), a_im=np.array([[0, 0]]), b_re=np.array([[1, 0]]),
                               b_im=np.array([[0, 0]]), b_shift=arr(0), out_bits=24), "x")
    g.add("ro", hw.QModeReadout(c_re=np.array([[1, 1]]), c_im=np.array([[0, 1]]), d=arr(0), shift=arr(0), out_bits=8),
          {"state": "bank", "skip": "x"})
    g.add("f", hw.QLUT(table=arr(0, 1, 2), in_shift=0, offset=1, size=1), "ro")
    g.inputs, g.outputs = ["x"], ["f"]
    r = simulate(g, np.array([[[2], [0], [0]]], np.float64), arith=arith)
    c = {lc.name: lc for lc in r.counts.layers}
    # bank: mode 0 gets re = 2 at t0 only (a = 0); mode 1 gets no input (b = 0). 1 graded message of 24 bits.
    assert (c["bank"].graded_messages, c["bank"].payload_bits) == (1, 24)
    # 2 modes = 4 compartments x 3 steps; active modes: t0 both (input u != 0), t1 mode 0 (state (2, 0)), t2 none
    assert (c["bank"].neurons, c["bank"].compartment_updates, c["bank"].neuron_updates) == (4, 12, 6)
    # 4 multiply-adds per mode per step; 1 non-zero b; its input u != 0 once -> 1 MAC
    assert (c["bank"].state_update_ops, c["bank"].synapses, c["bank"].synops_dense) == (24, 1, 3)
    assert (c["bank"].synops_effective_mac, c["bank"].synops_effective_ac) == (1, 0)
    # readout: y = 2, 0, 0; 3 non-zero weights (c_re 2, c_im 1, d 0); the state message (re0, c_re0 != 0) -> 1 MAC
    assert (c["ro"].graded_messages, c["ro"].payload_bits, c["ro"].synapses, c["ro"].synops_dense) == (1, 8, 3, 9)
    assert (c["ro"].synops_effective_mac, c["ro"].neuron_updates, c["ro"].compartment_updates) == (1, 1, 3)
    # LUT: idx 3 -> clamped to 2 (a saturation), then 1, 1: outputs 2, 1, 1; one evaluation per step
    assert (c["f"].lut_ops, c["f"].graded_messages, c["f"].payload_bits, c["f"].saturations) == (3, 3, 72, 1)
    assert c["f"].neuron_updates == 1


def test_counters_off_still_gives_spikes() -> None:
    r = simulate(spiking_net(), X, counters=False)
    assert r.counts is None
    assert r.spikes == {"lif": 4} and r.spikes_per_step["lif"].tolist() == [2, 0, 2]


def test_counts_add_over_samples() -> None:
    g = spiking_net()
    x2 = np.concatenate([X, X[:, ::-1]], axis=0)
    both = simulate(g, x2, target=tiny_target(), batch_size=1)
    a = simulate(g, x2[:1], target=tiny_target())
    b = simulate(g, x2[1:], target=tiny_target())
    assert both.counts == a.counts + b.counts
