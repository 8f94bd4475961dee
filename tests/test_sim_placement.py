"""Placement: small models fit; models past a (tiny, fake) limit give violations naming resource, used and limit."""

from __future__ import annotations

import dataclasses

import numpy as np

from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.mapping.placement import COMPUTE, HOST, SYNAPSE, place
from neurocompile.target import load_target


def arr(*v: int) -> np.ndarray:
    return np.array(v, np.int64)


def fake(base: str = "loihi2", **core) -> object:
    t = load_target(base)
    system = core.pop("system", {})
    return dataclasses.replace(t, core=dataclasses.replace(t.core, **core),
                               system=dataclasses.replace(t.system, **system))


def ssm_net(h: int = 4, m: int = 4, n_in: int = 3) -> Graph:
    rng = np.random.default_rng(0)
    g = Graph("ssm")
    g.add("x", hw.QInput(size=n_in, out_scale=1.0, out_bits=8))
    g.add("enc", hw.QDense(weight=rng.integers(-9, 10, (h, n_in)), bias=np.zeros(h, np.int64),
                           shift=np.zeros(h, np.int64), out_bits=16), "x")
    z = np.full((h, m), 1000, np.int64)
    g.add("ssm", hw.QModeBank(a_re=z, a_im=z, b_re=z // 100, b_im=z // 100, b_shift=np.zeros(h, np.int64)), "enc")
    g.add("ro", hw.QModeReadout(c_re=z // 100, c_im=z // 100, d=np.ones(h, np.int64), shift=np.zeros(h, np.int64)),
          {"state": "ssm", "skip": "enc"})
    g.add("lif", hw.QLIF(vth=np.full(h, 5, np.int64)), "ro")
    g.add("pool", hw.QAccumulate(size=h), "lif")
    g.add("head", hw.QDense(weight=np.ones((2, h), np.int64), bias=arr(0, 0), shift=arr(0, 0), out_bits=0), "pool")
    g.inputs, g.outputs = ["x"], ["head"]
    return g


def test_small_model_fits_loihi2_on_one_core() -> None:
    g = ssm_net()
    p = place(g, load_target("loihi2"))
    assert p.fits and p.violations == ()
    assert p.cores_used == 1
    assert p.roles == {"x": HOST, "enc": SYNAPSE, "ssm": COMPUTE, "ro": COMPUTE, "lif": COMPUTE, "pool": COMPUTE,
                       "head": HOST}
    c = p.cores[0]
    # compartments: 2 per mode (4 x 4 x 2 = 32) + readout 4 + lif 4 + pool 4
    assert c.compartments == 44
    # synapses x 8 bits: the enc rows twice (they feed the bank and the readout's skip port: replicated on both)
    # + bank b 32 + readout c 32 + d 4
    assert c.synapse_bits == 8 * (2 * int(np.count_nonzero(g.node("enc").weight)) + 32 + 32 + 4)
    assert p.node_cores["enc"] == (0,) and p.node_cores["head"] == ()
    util = p.resource_utilisation()[0]
    assert util["compartments"] == 44 / 8192 and 0 < util["memory"] < 1
    assert p.utilisation() == {0: max(util.values())}
    assert place(g, load_target("loihi2")).to_dict() == p.to_dict()  # pure and deterministic


def test_greedy_fill_splits_by_compartments() -> None:
    g = ssm_net(h=4, m=2)  # bank units: a channel = 2 modes = 4 compartments, placed with its readout neuron
    p = place(g, fake(compartments=10))
    assert p.fits
    # core ids are physical (arranged on the mesh): compare the sets of cores, not their numbers
    assert len(p.node_cores["ssm"]) == 2 and p.node_core_counts["ssm"] == (8, 8)
    # each readout neuron sits on its channel's core (its 2M state inputs stay inside the core)
    assert p.node_cores["ro"] == p.node_cores["ssm"] and p.node_core_counts["ro"] == (2, 2)
    assert np.array_equal(p.unit_core["ro"], p.unit_core["ssm"])
    # lif (4) and pool (4) fill the third core
    assert p.node_cores["lif"] == p.node_cores["pool"] and not set(p.node_cores["lif"]) & set(p.node_cores["ssm"])
    assert sorted(c.compartments for c in p.cores) == [8, 10, 10]


def test_unit_larger_than_a_core_is_a_violation_naming_resource_used_and_limit() -> None:
    g = ssm_net(h=2, m=4)  # one channel = 8 compartments
    p = place(g, fake(compartments=4))
    assert not p.fits
    v = [v for v in p.violations if v.node == "ssm" and v.resource == "compartments"]
    assert v and (v[0].used, v[0].limit, v[0].rule, v[0].severity) == (8, 4, "core-capacity", "error")
    assert "node 'ssm' needs 8 compartments where the target allows 4" in str(v[0])


def test_too_many_cores_is_a_violation() -> None:
    p = place(ssm_net(h=4, m=4), fake(compartments=8, system={"cores_per_chip": 2, "chips": 1}))
    v = [v for v in p.violations if v.rule == "cores"]
    assert v and v[0].used == p.cores_used and v[0].limit == 2 and p.cores_used > 2


def test_memory_and_input_axon_limits() -> None:
    g = Graph("d")
    g.add("x", hw.QInput(size=6, out_scale=1.0, out_bits=8))
    g.add("d", hw.QDense(weight=np.ones((4, 6), np.int64), bias=np.zeros(4, np.int64), shift=np.zeros(4, np.int64),
                         out_bits=8), "x")
    g.add("lif", hw.QLIF(vth=np.ones(4, np.int64)), "d")
    g.add("y", hw.QInput(size=6, out_scale=1.0, out_bits=8))
    g.add("hv", hw.QHeaviside(vth=np.zeros(6, np.int64)), "y")
    g.inputs, g.outputs = ["x", "y"], ["lif", "hv"]
    # a lif neuron needs 6 input axons (its dense row) and 6 x 8 synapse bits; over 5 axons its row is split
    # into two partial-sum compartments of 3 inputs each (mapping/partials.py)
    p = place(g, fake(input_axons=5))
    assert p.fits and p.node_cores["lif:partial:d"] and all(c.input_axons <= 5 for c in p.cores)
    p = place(g, fake(synapse_memory_bits=40, shared_memory=False))
    assert ("lif", "memory bits", 48, 40) in {(v.node, v.resource, v.used, v.limit) for v in p.violations}
    # input axons shared by the neurons of a core: 4 lif neurons need the same 6 axons -> one core; the 6
    # heaviside neurons need 1 each: with 8 axons per core they split 2 + 4 over the lif core and the next
    p = place(g, fake(input_axons=8))
    assert p.fits
    assert p.node_cores["lif"] == (0,) and p.node_core_counts["hv"] == (2, 4)
    assert [c.input_axons for c in p.cores] == [8, 4]


def test_mesh_coordinates_and_hops() -> None:
    p = place(ssm_net(), load_target("loihi1"))  # 4 cores per tile, 8 x 4 tiles
    assert p.core_xy(0) == (0, 0, 0) and p.core_xy(3) == (0, 0, 0) and p.core_xy(4) == (0, 1, 0)
    assert p.core_xy(32) == (0, 0, 1) and p.core_xy(127) == (0, 7, 3)
    assert p.hops(0, 127) == (7, 3) and p.hops(5, 38) == (0, 1) and p.hops(1, 2) == (0, 0)
    q = place(ssm_net(), load_target("kapoho-point"))  # chips side by side along x
    assert q.core_xy(128) == (1, 8, 0) and q.hops(0, 129) == (9, 0)


def test_output_axons_are_met_by_refilling() -> None:
    """lif1 (4) -> dense 8x4 -> lif2 (8) with 4 compartments and 7 output axons per core: a lif1 neuron reaches
    every core of lif2. Pass 1 guesses 1 axon per neuron, so the lif1 neurons sharing a core with lif2 rows
    overflow (8 > 7); the next passes charge each neuron its axons of the pass before, and the placement fits."""
    import neurocompile.mapping.placement as pl

    g = Graph("axons")
    g.add("x", hw.QInput(size=4, out_scale=1.0, out_bits=8))
    g.add("lif1", hw.QLIF(vth=np.ones(4, np.int64)), "x")
    g.add("d", hw.QDense(weight=np.ones((8, 4), np.int64), bias=np.zeros(8, np.int64), shift=np.zeros(8, np.int64),
                         out_bits=8), "lif1")
    g.add("lif2", hw.QLIF(vth=np.ones(8, np.int64)), "d")
    g.inputs, g.outputs = ["x"], ["lif2"]
    tgt = fake(compartments=4, output_axons=7)
    p = place(g, tgt)
    assert p.fits, [str(v) for v in p.violations]
    assert max(c.output_axons for c in p.cores) <= 7 and len(p.node_cores["lif1"]) >= 2
    old = pl.MAX_PASSES
    try:
        pl.MAX_PASSES = 1
        one = place(g, tgt)
    finally:
        pl.MAX_PASSES = old
    assert [v.resource[:20] for v in one.violations] == ["output axons on core"]
    assert one.violations[0].used == 8 and one.violations[0].limit == 7
