"""Partial-sum (dendritic accumulation) splitting of neurons whose fan-in exceeds a core's input axons: the split
rule, its limits, placement, design rules, the message counter (hand counts), energy and timing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from neurocompile.cost.energy import estimate, partial_message_pj
from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.mapping.partials import partial_sums, plan_partials
from neurocompile.mapping.placement import place
from neurocompile.passes.checks import check_graph
from neurocompile.passes.common import Precision
from neurocompile.passes.fit import fit_report
from neurocompile.sim import reference
from neurocompile.sim.activity import with_exact_partials
from neurocompile.sim.engine import simulate
from neurocompile.target import load_target

#: fan-in 10 over cores of 4 input axons: chunks of 4 columns (0-3, 4-7, 8-9), 3 partials per neuron
W = np.array([[1, 0, 2, 0, -1, 1, 0, 0, 0, 3],
              [0, 1, 0, 1, 1, 0, 0, 1, 1, 0]], np.int64)
#: t0: row 0's chunk 0 is non-zero, its chunk 1 cancels (-1 + 1), row 1's chunk 1 is non-zero;
#: t1: row 1's chunks 0, 1 and 2 and row 0's chunk 2; t2: nothing
X = np.array([[[1, 0, 0, 0, 1, 1, 0, 0, 0, 0],
               [0, 1, 0, 0, 0, 0, 0, 1, 1, 1],
               [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]]], np.float32)


def fake(base: str = "loihi2", **core: int):
    t = load_target(base)
    return dataclasses.replace(t, core=dataclasses.replace(t.core, **core))


def net(w: np.ndarray = W) -> Graph:
    out = w.shape[0]
    z = np.zeros(out, np.int64)
    g = Graph("ps")
    g.add("x", hw.QInput(size=w.shape[1], out_scale=1.0, out_bits=8))
    g.add("d", hw.QDense(weight=w, bias=z, shift=z, out_bits=16), "x")
    g.add("lif", hw.QLIF(vth=np.full(out, 2, np.int64)), "d")
    g.inputs, g.outputs = ["x"], ["lif"]
    return g


def ones(out: int, fan_in: int) -> np.ndarray:
    return np.ones((out, fan_in), np.int64)


def test_split_rule_chunks_and_exact_sums() -> None:
    g = net()
    plan = plan_partials(g, 4)
    (s,) = plan.splits
    assert (s.soma, s.dense, s.width) == ("lif", "d", 4) and not plan.over
    # chunk-major: the partials of one chunk read the same axons
    assert s.chunk.tolist() == [0, 0, 1, 1, 2, 2] and s.rows.tolist() == [0, 1, 0, 1, 0, 1]
    x = np.random.default_rng(1).integers(-50, 50, (7, 10))
    part = partial_sums(g, s, x)
    for row in (0, 1):  # the soma's sum of its exact partial sums is the dense's sum
        assert np.array_equal(part[:, s.rows == row].sum(axis=1), x @ W[row])
    assert plan.summary(g) == [{"node": "lif", "neurons_split": 2, "parts": 6, "max_parts": 3, "denses": ["d"]}]


def test_placement_uses_resources_of_the_partials() -> None:
    g = net()
    p = place(g, fake(input_axons=4))
    assert p.fits and p.roles["lif:partial:d"] == "compute"
    assert all(c.input_axons <= 4 for c in p.cores)
    assert sum(c.compartments for c in p.cores) == 2 + 6
    # the partials hold the dense's weights (8 bits each), the somas one 1-bit join synapse per partial
    assert sum(c.synapse_bits for c in p.cores) == np.count_nonzero(W) * 8 + 6
    # every partial sends its one message to the core of its soma (one input axon there each)
    reach = p.reach["lif:partial:d"]
    soma_core = {int(c) for c in p.unit_core["lif"]}
    assert reach.rows.size == 6 and set(reach.cores.tolist()) <= soma_core
    assert p.to_dict() == place(g, fake(input_axons=4)).to_dict()  # deterministic


def test_fan_in_at_the_limit_is_not_split() -> None:
    g = net(ones(2, 4))
    t = fake(input_axons=4)
    assert not plan_partials(g, 4).splits
    assert "lif:partial:d" not in place(g, t).roles
    assert fit_report(g, t)["partial_sums"] == []
    assert not [v for v in check_graph(g, Precision(input_axons=4)) if v.rule == "fan-in"]
    over = fit_report(net(ones(2, 5)), t)  # one over: split in two, no finding
    assert over["fits"] and over["partial_sums"][0]["max_parts"] == 2


def test_over_the_partial_sum_limit_is_one_error_line() -> None:
    t = fake(input_axons=4)
    g = net(ones(2, 16))  # 4 chunks of 4: the soma takes 4 partials, the most it can
    assert fit_report(g, t)["fits"]
    g = net(ones(2, 17))  # 5 chunks: 5 partial messages into a 4-axon soma
    rep = fit_report(g, t)
    bad = [f for f in rep["findings"] if f["rule"] == "fan-in"]
    assert not rep["fits"] and len(bad) == 1
    assert (bad[0]["node"], bad[0]["usage"], bad[0]["limit"]) == ("lif", 5, 4)
    assert "partial sums" in bad[0]["resource"] and bad[0]["fix"]
    v = [v for v in check_graph(g, Precision(input_axons=4)) if v.rule == "fan-in"]
    assert len(v) == 1 and v[0].severity == "error" and (v[0].used, v[0].limit) == (5, 4)
    assert "fan-in up to 17" in str(v[0]) and "one level of partial sums" in str(v[0])


def test_binary_spike_targets_split_nothing() -> None:
    g = net(ones(2, 5))
    rep = fit_report(g, fake("loihi1", input_axons=4))
    bad = [f for f in rep["findings"] if f["rule"] == "fan-in"]
    assert bad and bad[0]["usage"] == 5 and rep["partial_sums"] == []
    v = [v for v in check_graph(g, Precision(input_axons=4, message_bits=1)) if v.rule == "fan-in"]
    assert {x.node for x in v} == {"d", "lif"} and all("graded messages" in x.message for x in v)


def test_partial_sum_payload_must_fit_the_graded_message() -> None:
    g = net(np.full((2, 10), 100, np.int64))
    # worst chunk: 4 x 100 x 127 (8-bit input) = 50,800 > 2^15 - 1 on 16-bit graded messages
    v = [v for v in check_graph(g, Precision(input_axons=4, message_bits=16)) if v.rule == "partial-sum"]
    assert v and (v[0].node, v[0].used, v[0].limit, v[0].severity) == ("lif", 50_800, 32_767, "error")
    assert not [v for v in check_graph(g, Precision(input_axons=4, message_bits=24)) if v.rule == "partial-sum"]


@pytest.mark.parametrize("w, trips", [(64, False), (65, True)])
def test_partial_sum_payload_just_under_and_over_the_limit(w: int, trips: bool) -> None:
    # worst chunk of 4 columns: 4 x 64 x 127 = 32,512 <= 32,767 fits a 16-bit graded message; 4 x 65 x 127 = 33,020
    g = net(np.full((2, 10), w, np.int64))
    v = [v for v in check_graph(g, Precision(input_axons=4, message_bits=16)) if v.rule == "partial-sum"]
    assert bool(v) is trips
    if trips:
        assert (v[0].used, v[0].limit) == (4 * w * 127, 32_767)


def test_counter_equals_hand_count_and_output_is_unchanged() -> None:
    g, t = net(), fake(input_axons=4)
    r = simulate(g, X, target=t, record=True)
    assert np.array_equal(r.trace["x"][0], X[0].astype(np.int64))
    ref = reference.run(g, X)
    assert np.array_equal(r.outputs["lif"], ref.outputs["lif"])  # bit-equal to the reference runner
    lc = r.counts.layer("lif")
    # upper bound, per partial: steps with a non-zero input under a non-zero weight of its slice:
    # (r0,c0) 1, (r1,c0) 1, (r0,c1) 2, (r1,c1) 2, (r0,c2) 1, (r1,c2) 1
    assert lc.partial_messages == 8
    p = place(g, t)
    exact = with_exact_partials(r.counts, g, p, r.trace).layer("lif")
    assert exact.partial_messages == 2 + 4  # t0: (r0,c0), (r1,c1); t1: (r1,c0), (r1,c1), (r0,c2), (r1,c2)
    hops = p.routes["lif:partial:d"]
    assert exact.partial_hops <= 6 * int(hops.hops.max(initial=0))
    assert r.counts.layer("d").partial_messages == 0


def test_energy_grows_by_count_times_price_and_timing_has_a_phase() -> None:
    g, t = net(), fake(input_axons=4)
    counts = simulate(g, X, target=t).counts
    lc = counts.layer("lif")
    zero = dataclasses.replace(counts, layers=tuple(dataclasses.replace(x, partial_messages=0, partial_hops=0,
                                                                        partial_hops_ns=0) for x in counts.layers))
    with_p, without = estimate(counts, t), estimate(zero, t)
    e = t.energy
    price = lc.partial_messages * partial_message_pj(t) + (lc.partial_hops - lc.partial_hops_ns) * e.hop_ew_pj \
        + lc.partial_hops_ns * e.hop_ns_pj
    assert partial_message_pj(t) == pytest.approx(e.spike_out_pj + e.message_out_pj + e.message_in_pj)
    assert (with_p.dynamic_energy_j - without.dynamic_energy_j) * counts.samples == pytest.approx(price * 1e-12)
    assert with_p.dynamic_breakdown_j["partial"] * counts.samples == pytest.approx(price * 1e-12)
    assert without.latency_breakdown_ns["partial_ns"] == 0
    tm = t.timing
    assert with_p.latency_breakdown_ns["partial_ns"] >= tm.spike_out_ns + tm.message_out_ns + tm.message_in_ns


def test_cycle_timing_adds_the_relay_only_at_steps_with_partial_sums() -> None:
    from neurocompile.cost.timing import cycle_timing, partial_relay_ns

    g, t = net(), fake(input_axons=4)
    r = simulate(g, X, target=t, record=True)
    p = place(g, t)
    relay = partial_relay_ns(g, p, r.trace, t, 0, 3)
    assert relay[0] > 0 and relay[1] > 0 and relay[2] == 0
    tm = cycle_timing(g, p, r.trace, t)
    assert len(tm["per_step_ns"]) == 3 and tm["per_step_ns"][0] >= relay[0]


def test_reports_show_the_partial_messages() -> None:
    from neurocompile.report.html import render_html
    from neurocompile.report.json_report import report_json
    from neurocompile.report.terminal import render_report_text

    g, t = net(), fake(input_axons=4)
    counts = simulate(g, X, target=t).counts
    rep = estimate(counts, t)
    text = render_report_text(rep, counts, width=200)
    assert "partial-sum messages" in text and "partial msgs" in text and "partial sums" in text
    assert "partial-sum messages" in render_html(rep, counts=counts)
    doc = report_json(rep, counts)
    assert doc["activity"]["metrics"]["partial_messages_per_sample"] == 8
    lif = next(x for x in doc["activity"]["layers"] if x["name"] == "lif")
    assert lif["partial_messages"] == 8 and doc["dynamic_breakdown_j"]["partial"] > 0
    plain = estimate(simulate(net(ones(2, 4)), X[:, :, :4], target=t).counts, t)
    assert "partial" not in render_report_text(plain, width=200).lower()
