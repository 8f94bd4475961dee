"""Neuron kernels of the compiled step at their edges, against the reference kernels: QLavaLIF's current wrapping
around its state width, saturating voltages and traces (QLIF, QRefractory), every reset of QLIF, spikes that
both cross and stay under threshold."""

from __future__ import annotations

import numpy as np
import pytest
from test_sim_compiled import assert_identical

from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.sim.engine import simulate

pytest.importorskip("numba")

I = np.int64


def neuron_graph(neuron: hw.QNode, n: int, seed: int) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph(f"neuron{seed}")
    g.add("x", hw.QInput(size=3, out_scale=0.05, out_bits=10))
    g.inputs = ["x"]
    g.add("enc", hw.QDense(weight=rng.integers(-120, 121, (n, 3)).astype(I), bias=np.zeros(n, I),
                           shift=np.zeros(n, I), out_bits=16), "x")
    g.add("nrn", neuron, "enc")
    g.outputs = ["nrn"]
    return g


def _lavalif(rng: np.random.Generator, n: int) -> hw.QLavaLIF:
    # 10-bit states and inputs shifted by 6: the current leaves (-2^9, 2^9] and is wrapped back, once a step
    return hw.QLavaLIF(du=int(rng.integers(0, 400)), dv=int(rng.integers(0, 4096)), vth=rng.integers(1, 8, n).astype(I),
                       bias_mant=rng.integers(-50, 51, n).astype(I), bias_exp=np.zeros(n, I), state_bits=10,
                       act_shift=6, vth_shift=2)


def _lif(rng: np.random.Generator, n: int, reset: str) -> hw.QLIF:
    return hw.QLIF(decay=int(rng.integers(2000, 4097)), vth=rng.integers(-50, 3000, n).astype(I), reset=reset,
                   compare=str(rng.choice([">=", ">"])), state_bits=12)


def _refractory(rng: np.random.Generator, n: int) -> hw.QRefractory:
    return hw.QRefractory(decay=int(rng.integers(2000, 4097)), lam=int(rng.integers(2000, 4097)),
                          vth=rng.integers(1, 2000, n).astype(I), rho=rng.integers(0, 400, n).astype(I),
                          trace_frac_bits=int(rng.integers(0, 4)), state_bits=12)


@pytest.mark.parametrize("kind", ["lavalif", "lif-zero", "lif-subtract", "lif-none", "refractory"])
@pytest.mark.parametrize("seed", range(3))
def test_neuron_edges_compiled_equal_reference(kind: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 11
    make = {"lavalif": lambda: _lavalif(rng, n), "refractory": lambda: _refractory(rng, n)}
    neuron = make[kind]() if kind in make else _lif(rng, n, kind.split("-")[1])
    g = neuron_graph(neuron, n, seed)
    x = rng.standard_normal((3, 25, 3)) * 40.0
    kw = {"record": True, "counters": True, "batch_size": 2}
    comp, ref = simulate(g, x, backend="compiled", **kw), simulate(g, x, arith="reference", **kw)
    assert comp.backend == "compiled"
    assert_identical(ref, comp, kind)
    spikes = ref.trace["nrn"]
    assert 0 < np.count_nonzero(spikes) < spikes.size  # some cross, some do not
    assert ref.saturations["nrn"] > 0  # the voltages (and traces) saturate at their 10 or 12 bits
