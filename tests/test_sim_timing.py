"""Cycle-level timing: hand-checked schedules on tiny placements, and the per-step report of a recorded run."""

from __future__ import annotations

import numpy as np
import pytest

from neurocompile.cost.energy import estimate
from neurocompile.cost.timing import Sender, cycle_timing, schedule_step
from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.mapping.placement_modes import place_as, tiles_used
from neurocompile.sim.engine import simulate
from neurocompile.target import load_target

T = load_target("loihi1").timing
MESH = (128, 4, 8, 4)  # loihi1: cores per chip, cores per tile, mesh x, mesh y
# loihi1 (SANA-FE's Loihi file): access 6.0, update 3.7, spike out 30, message out 5.1, message in 16,
# dense look-up 3.8, hop east-west 4.1, north-south 6.5 ns
FIRE = 6.0 + 3.7 + 30.0  # a compartment that is updated and fires


def test_one_core_schedule_by_hand():
    # core 0: compartment 0 fires one message to its own core (3 look-ups); compartment 1 is only accessed
    s = Sender(0, np.array([FIRE, 6.0]), [[0], []], [[3], []])
    r = schedule_step([s], MESH, T, {})
    m = r["messages"][0]
    assert m.t_gen == pytest.approx(FIRE + 5.1)  # 44.8 ns
    assert m.t_arrive == pytest.approx(44.8)  # same core: no hop
    assert m.t_done == pytest.approx(44.8 + 16.0 + 3 * 3.8)  # 72.2 ns
    assert r["soma_end"][0] == pytest.approx(44.8 + 6.0)  # 50.8 ns
    assert r["busy_ns"] == pytest.approx(72.2) and r["critical"] == 0


def test_two_cores_one_hop_apart_by_hand():
    # core 0 (tile 0) sends to core 4 (tile 1, one hop east) 2 look-ups; core 4 accesses one compartment
    a = Sender(0, np.array([FIRE]), [[4]], [[2]])
    b = Sender(4, np.array([6.0]), [[]], [[]])
    r = schedule_step([a, b], MESH, T, {})
    m = r["messages"][0]
    assert m.t_arrive == pytest.approx(44.8 + 4.1)
    assert m.t_done == pytest.approx(48.9 + 16.0 + 2 * 3.8)  # 72.5 ns
    assert r["soma_end"][4] == pytest.approx(6.0)
    assert r["busy_ns"] == pytest.approx(72.5) and r["critical"] == 4


def test_two_messages_contend_for_one_link_by_hand():
    # cores 0 and 1 (tile 0) fire at the same time to cores 4 and 5 (tile 1): both need link (0,0) -> (1,0)
    a = Sender(0, np.array([FIRE]), [[4]], [[1]])
    b = Sender(1, np.array([FIRE]), [[5]], [[1]])
    r = schedule_step([a, b], MESH, T, {})
    by_dst = {m.dst: m for m in r["messages"]}
    assert by_dst[4].t_arrive == pytest.approx(44.8 + 4.1)  # first served
    assert by_dst[5].t_arrive == pytest.approx(44.8 + 2 * 4.1)  # waits one hop time for the busy link
    assert by_dst[5].t_done == pytest.approx(53.0 + 16.0 + 3.8)  # 72.8 ns
    assert r["busy_ns"] == pytest.approx(72.8)
    # north-south route from core 0 to tile (0, 1) = core 32: one N-S hop
    c = schedule_step([Sender(0, np.array([FIRE]), [[32]], [[0]])], MESH, T, {})
    assert c["messages"][0].t_arrive == pytest.approx(44.8 + 6.5)


def test_back_pressure_stalls_the_sender_by_hand():
    import dataclasses

    # one-message link buffers: (1 hop + 1) x 1 = 2 messages may be outstanding towards core 4
    t = dataclasses.replace(T, link_buffer_messages=1)
    s = Sender(0, np.array([FIRE, FIRE, FIRE]), [[4], [4], [4]], [[100], [100], [100]])
    r = schedule_step([s], MESH, t, {})
    m1, m2, m3 = r["messages"]
    proc = 16.0 + 100 * 3.8  # 396 ns per message at core 4
    assert m1.t_gen == pytest.approx(44.8) and m1.t_done == pytest.approx(48.9 + proc)  # 444.9
    assert m2.t_gen == pytest.approx(89.6) and m2.t_done == pytest.approx(444.9 + proc)  # queued behind m1
    # m3 is ready at 134.4 but two messages are outstanding: it leaves when m1 is processed, and so does the core
    assert m3.t_gen == pytest.approx(444.9) and m3.t_arrive == pytest.approx(449.0)
    assert m3.t_done == pytest.approx(840.9 + proc) and r["soma_end"][0] == pytest.approx(444.9)
    # with the target's 16-message buffers nothing waits
    assert schedule_step([s], MESH, T, {})["messages"][2].t_gen == pytest.approx(134.4)


def _chain() -> Graph:
    g = Graph("chain")
    g.add("x", hw.QInput(size=2, out_scale=1.0, out_bits=2))
    g.add("d", hw.QDense(weight=np.array([[1, 1], [1, 0]]), bias=np.zeros(2, np.int64), shift=np.full(2, -6),
                         out_bits=16, delay=1, rounding="floor"), "x")
    g.add("lif", hw.QLIF(decay=4096, vth=np.array([64, 64]), state_bits=24, reset="zero", compare=">"), "d")
    g.inputs, g.outputs = ["x"], ["lif"]
    return g


def test_cycle_timing_of_a_recorded_run_by_hand():
    g = _chain()
    tgt = load_target("loihi1")
    p = place_as(g, tgt, "packed")
    x = np.array([[[1, 1], [0, 0], [0, 0]]], np.float64)  # both inputs spike at step 0 only
    r = simulate(g, x, placement=p, record=True)
    cyc = cycle_timing(g, p, r.trace, tgt)
    # step 0: host port sends 2 messages (5.1 ns each) to core 0: look-ups 2 and 1 -> done 5.1+16+7.6 = 28.7,
    # then 10.2 + ... starts at 28.7: 28.7 + 16 + 3.8 = 48.5; core 0's soma: 2 accesses = 12 ns
    # step 1: input arrives (delay 1): both updated (2 x 9.7 = 19.4 ns), v = 128, 64: lif0 fires -> 49.4 ns
    # step 2: lif0 reset (v = 0: not updated), lif1 v = 64 != 0: updated -> 6 + 9.7 = 15.7 ns
    barrier = T.barrier_ns  # 1 tile
    assert cyc["per_step_ns"] == pytest.approx([48.5 + barrier, 49.4 + barrier, 15.7 + barrier])
    assert cyc["max_ns"] == pytest.approx(49.4 + barrier) and cyc["critical_core"] == 0
    assert cyc["tiles_used"] == 1 and tiles_used(p) == 1
    rep = estimate(r.counts, tgt, tiles_used=1, timing=cyc)
    assert rep.latency_per_step_s == pytest.approx(cyc["mean_ns"] * 1e-9)
    assert rep.timing["mode"] == "cycle" and rep.timing["p95_ns"] == cyc["p95_ns"]
    # counters agree with the schedule: accesses 6, updated 2 + 1, 1 spike, 2 host messages received
    lif = r.counts.layer("lif")
    assert (lif.compartment_updates, lif.neuron_updates, lif.spikes) == (6, 3, 1)
    assert (r.counts.layer("x").messages, r.counts.layer("d").messages_in) == (2, 2)


def test_analytical_equals_cycle_without_messages():
    # no input spikes: every step is the same soma work on one core, nothing contends
    g = _chain()
    tgt = load_target("loihi1")
    p = place_as(g, tgt, "packed")
    r = simulate(g, np.zeros((1, 4, 2)), placement=p, record=True)
    cyc = cycle_timing(g, p, r.trace, tgt)
    ana = estimate(r.counts, tgt, tiles_used=tiles_used(p))
    assert ana.latency_per_step_s * 1e9 == pytest.approx(cyc["mean_ns"]) == pytest.approx(12.0 + T.barrier_ns)
