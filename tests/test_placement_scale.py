"""Placement at scale: routes per own core equal the brute-force X-Y hops; determinism; SSM channel groups."""

from __future__ import annotations

import dataclasses

import numpy as np

from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.sim.placement import COMPUTE, place
from neurocompile.target import load_target


def fake(**core: int):
    t = load_target("loihi1")  # 4 cores per tile: local messages exist
    return dataclasses.replace(t, core=dataclasses.replace(t.core, **core))


def net(h: int = 24, m: int = 3) -> Graph:
    rng = np.random.default_rng(1)
    z = lambda *s: np.zeros(s, np.int64)
    g = Graph("n")
    g.add("x", hw.QInput(size=4, out_bits=8))
    g.add("enc", hw.QDense(weight=rng.integers(-3, 4, (h, 4)), bias=z(h), shift=z(h), out_bits=16), "x")
    one = np.ones((h, m), np.int64)
    g.add("ssm", hw.QModeBank(a_re=one, a_im=one, b_re=one, b_im=z(h, m), b_shift=z(h)), "enc")
    g.add("ro", hw.QModeReadout(c_re=one, c_im=one, d=np.ones(h, np.int64), shift=z(h)),
          {"state": "ssm", "skip": "enc"})
    g.add("lif", hw.QLIF(vth=np.ones(h, np.int64)), "ro")
    w = rng.integers(-1, 2, (h, h)) * (rng.random((h, h)) < 0.3)
    g.add("mix", hw.QDense(weight=w, bias=z(h), shift=z(h), out_bits=16), "lif")
    g.add("lif2", hw.QLIF(vth=np.ones(h, np.int64)), "mix")
    g.add("pool", hw.QAccumulate(size=h), "lif2")
    g.inputs, g.outputs = ["x"], ["pool"]
    return g


def test_routes_equal_brute_force_hops_and_placement_is_deterministic() -> None:
    g, t = net(), fake(compartments=20)
    p = place(g, t)
    assert p.fits and p.cores_used > 4
    for name, role in p.roles.items():
        if role != COMPUTE:
            continue
        reach = p._reach[name]
        own = np.repeat(p.unit_core[name], g.node(name).out_size() // p.unit_core[name].size)
        for i in range(reach.shape[0]):
            dst = [c for c in np.flatnonzero(reach[i]) if c != own[i]]
            hops = [p.hops(int(own[i]), int(c)) for c in dst]
            r = p.routes[name]
            assert r.messages[i] == len(dst)
            assert r.hops[i] == sum(a + b for a, b in hops) and r.hops_ns[i] == sum(b for _, b in hops)
            assert r.local[i] == sum(c // 4 == own[i] // 4 for c in dst)
    again = place(g, t)
    assert again.to_dict() == p.to_dict()
    for name in p.routes:
        assert all(np.array_equal(getattr(p.routes[name], f), getattr(again.routes[name], f))
                   for f in ("messages", "local", "hops", "hops_ns"))


def test_ssm_channel_and_its_readout_share_a_core_unless_the_pair_exceeds_one() -> None:
    g = net(h=8, m=3)
    p = place(g, fake(compartments=14))  # a channel (6) + its readout neuron (1): two pairs per core
    assert np.array_equal(p.unit_core["ssm"], p.unit_core["ro"])
    assert np.bincount(p.unit_core["ssm"]).max() == 2
    q = place(g, fake(compartments=6))  # the pair (7) exceeds a core: the channel alone fills one
    assert q.fits and not np.array_equal(q.unit_core["ssm"][:1], q.unit_core["ro"][:1])
