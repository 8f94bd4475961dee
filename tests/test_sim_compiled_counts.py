"""Per-index counters of the compiled step equal the NumPy engine's index by index, not only in total.

The energy model multiplies each node's non-zero outputs per index by per-index message and hop vectors
(:mod:`neurocompile.sim.activity`), so a permutation of the counts (a QModeBank's re and im, or its channels and
modes, in the wrong order) changes the cost while every total stays equal. The graphs here make the counts
differ from index to index, so any permutation fails.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_sim_compiled import assert_identical

from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.sim import compiled
from neurocompile.sim.batch import _Acc, _Batch
from neurocompile.sim.compiled_nodes import mode_stride
from neurocompile.sim.engine import _inputs, plan, simulate

pytest.importorskip("numba")

I = np.int64


def bank_graph(seed: int, h: int, m: int, delay: int) -> Graph:
    """QInput -> QDense -> QModeBank -> QModeReadout -> QLIF -> QDense (edge delay), with modes of very different
    activity: per channel, some modes get no input (their b is 0) and stay 0, and the decays differ per mode."""
    rng = np.random.default_rng(seed)
    g = Graph(f"counts{seed}")
    g.add("x", hw.QInput(size=3, out_scale=0.1, out_bits=8))
    g.inputs = ["x"]
    g.add("enc", hw.QDense(weight=rng.integers(-60, 61, (h, 3)).astype(I), bias=np.zeros(h, I),
                           shift=np.full(h, 2, I), out_bits=12), "x")
    mag = rng.uniform(0.05, 0.9, (h, m))  # fast-decaying modes fall back to 0 between inputs
    ang = rng.uniform(-np.pi, np.pi, (h, m))
    b_re = rng.integers(-40, 41, (h, m)).astype(I)
    b_im = rng.integers(-40, 41, (h, m)).astype(I)
    quiet = rng.random((h, m)) < 0.3
    b_re[quiet], b_im[quiet] = 0, 0
    b_im[:, 0] = 0  # mode 0 of every channel: b real and a real, so its im part stays 0 while re moves
    a_re = np.round(mag * np.cos(ang) * 4096).astype(I)
    a_im = np.round(mag * np.sin(ang) * 4096).astype(I)
    a_im[:, 0] = 0
    g.add("ssm", hw.QModeBank(a_re=a_re, a_im=a_im, b_re=b_re, b_im=b_im, b_shift=np.full(h, 3, I), out_bits=16),
          "enc")
    g.add("ro", hw.QModeReadout(c_re=rng.integers(-20, 21, (h, m)).astype(I),
                                c_im=rng.integers(-20, 21, (h, m)).astype(I), d=np.zeros(h, I),
                                shift=np.full(h, 6, I), out_bits=12), {"state": "ssm", "skip": "enc"})
    g.add("lif", hw.QLIF(decay=2048, vth=rng.integers(2, 40, h).astype(I), state_bits=16), "ro")
    g.add("out", hw.QDense(weight=rng.integers(-9, 10, (4, h)).astype(I), bias=np.zeros(4, I),
                           shift=np.zeros(4, I), out_bits=12), "lif")
    if delay:
        g.add("late", hw.QDense(weight=rng.integers(-9, 10, (h, h)).astype(I), bias=np.zeros(h, I),
                                shift=np.zeros(h, I), out_bits=12), "enc")
        g.connect("late", "lif", delay=delay)
    g.outputs = ["out"]
    return g


def _run(runner: type, g: Graph, x: np.ndarray, steps: int) -> _Acc:
    p = plan(g)
    xs, _, _ = _inputs(g, x)
    acc = _Acc(p, steps)
    runner(p, xs, acc, True, None, None, None, steps).run()
    return acc


@pytest.mark.parametrize("whole", [False, True], ids=["stepped", "whole-chunk"])
@pytest.mark.parametrize("seed, h, m, delay", [(0, 5, 3, 0), (1, 3, 6, 2), (2, 7, 2, 1)])
def test_per_index_counts_equal_numpy_index_by_index(seed: int, h: int, m: int, delay: int, whole: bool,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    g = bank_graph(seed, h, m, delay)
    rng = np.random.default_rng(100 + seed)
    n, steps = 3, 11
    x = rng.standard_normal((n, steps, 3)) * 20.0
    x[rng.random((n, steps)) < 0.6] = 0.0  # silent steps: states decay, some to 0, at per-mode rates
    monkeypatch.setattr(compiled, "CHUNK_ROWS", 7)  # several chunks: the counts accumulate across them
    if whole:  # the dense layers run over whole chunks and their outputs are counted after the product
        monkeypatch.setattr(compiled, "WHOLE_MIN_ROWS", 1)
        monkeypatch.setattr(compiled, "WHOLE_MIN_WORK", 1)
    assert compiled.batch_runner(plan(g), "compiled", {"x": x}, True) is compiled.CompiledBatch
    ref, comp = _run(_Batch, g, x, steps), _run(compiled.CompiledBatch, g, x, steps)
    bank = ref.nz["ssm"]
    assert bank.shape == (2 * h * m,)
    # the counts differ from index to index (else a permutation could not be seen): mode 0's im never moves
    assert np.all(bank[1::2 * m] == 0) and np.any(bank[0::2 * m] > 0)
    assert len(set(bank.tolist())) > 2
    for name, v in ref.nz.items():
        assert np.array_equal(comp.nz[name], v), (name, comp.nz[name], v)
    assert ref.edge_nz.keys() == comp.edge_nz.keys()
    for key, v in ref.edge_nz.items():
        assert np.array_equal(comp.edge_nz[key], v), key
    assert ref.active == comp.active
    assert ref.sat == comp.sat


def sparse_synapse_graph(seed: int) -> Graph:
    """x -> a dense of mostly zero weights (synapse-only) -> QLIF: the LIF's active count follows Loihi's rule,
    an event per output whose stored synapses got a non-zero input; with sparse weights an output's events
    need the right inputs, not any input."""
    rng = np.random.default_rng(seed)
    n_in, n = 12, 9
    w = rng.integers(-20, 21, (n, n_in)).astype(I)
    w[rng.random((n, n_in)) < 0.85] = 0
    w[0] = 0  # an output without stored synapses never gets an event
    g = Graph(f"sparse{seed}")
    g.add("x", hw.QInput(size=n_in, out_scale=0.5, out_bits=6))
    g.inputs = ["x"]
    g.add("syn", hw.QDense(weight=w, bias=np.zeros(n, I), shift=np.full(n, 12, I), out_bits=12), "x")
    g.add("lif", hw.QLIF(decay=0, vth=np.full(n, 1, I), state_bits=16), "syn")
    g.add("out", hw.QDense(weight=np.ones((2, n), I), bias=np.zeros(2, I), shift=np.zeros(2, I), out_bits=12),
          "lif")
    g.outputs = ["out"]
    return g


@pytest.mark.parametrize("whole", [False, True], ids=["stepped", "whole-chunk"])
@pytest.mark.parametrize("seed", range(3))
def test_synaptic_events_of_sparse_weights_equal_numpy(seed: int, whole: bool,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    g = sparse_synapse_graph(seed)
    rng = np.random.default_rng(200 + seed)
    n, steps = 4, 9
    x = rng.standard_normal((n, steps, 12)) * 2.0
    x[rng.random((n, steps, 12)) < 0.7] = 0.0  # few inputs per step: many outputs get no event
    monkeypatch.setattr(compiled, "CHUNK_ROWS", 16)
    if whole:
        monkeypatch.setattr(compiled, "WHOLE_MIN_ROWS", 1)
        monkeypatch.setattr(compiled, "WHOLE_MIN_WORK", 1)
    p = plan(g)
    assert "syn" in compiled.program(p).whole  # it may run over whole chunks (it does when ``whole``)
    assert "syn" in compiled.program(p).ev_prod  # its events reach the LIF's active count
    ref, comp = _run(_Batch, g, x, steps), _run(compiled.CompiledBatch, g, x, steps)
    # the shifted product is 0: only Loihi's events (and the LIF's own state) make a compartment active
    assert 0 < ref.active["lif"] < n * steps * 9
    assert comp.active == ref.active
    for name, v in ref.nz.items():
        assert np.array_equal(comp.nz[name], v), name


@pytest.mark.parametrize("n", [1, 15, 72, 512, 4096, 4168, 1 << 16])
def test_bank_arrays_start_off_4k_multiples(n: int) -> None:
    """Consecutive mode-major arrays of a bank start 576 bytes apart modulo 4 KiB (no 4 KiB aliasing)."""
    s = mode_stride(n)
    assert n <= s < n + 512 and (8 * s) % 4096 == 576


def _run_both(g: Graph, x: np.ndarray, steps: int) -> list:
    """The NumPy engine's batch runner and the compiled one, each run over x with counters on."""
    p = plan(g)
    xs, _, _ = _inputs(g, x)
    runs = []
    for runner in (_Batch, compiled.CompiledBatch):
        r = runner(p, xs, _Acc(p, steps), True, None, None, None, steps)
        r.run()
        runs.append(r)
    return runs


def test_bank_states_are_by_channel_like_numpy() -> None:
    """The compiled bank keeps its states mode-major; its final states read [B, H, M] as the NumPy engine's."""
    g = bank_graph(3, 5, 3, 0)
    x = np.random.default_rng(7).standard_normal((2, 6, 3)) * 20.0
    states = [r.final_states()["ssm"] for r in _run_both(g, x, 6)]
    assert states[0].keys() == states[1].keys() == {"re", "im"}
    for part in ("re", "im"):
        assert states[1][part].shape == (2, 5, 3) and np.any(states[0][part] != 0)
        assert states[1][part].flags.owndata  # a copy, not a view into the layout's arena
        assert np.array_equal(states[0][part], states[1][part])


@pytest.mark.parametrize("chunk_rows", [4, 7, 64])
def test_quiet_bank_output_is_its_last_state(chunk_rows: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bank read only by its fused readout does not write its output per step; after a run of several chunks
    its output (read by the sequence end) is its final state, re and im interleaved, as the NumPy engine's."""
    monkeypatch.setattr(compiled, "CHUNK_ROWS", chunk_rows)
    g = bank_graph(4, 5, 3, 0)
    x = np.random.default_rng(8).standard_normal((2, 9, 3)) * 20.0
    runs = _run_both(g, x, 9)
    lay = runs[1].lay
    assert "ssm" in lay._chunk_plan(min(9, max(1, chunk_rows // 2)), frozenset(), True).quiet  # not written
    st = runs[0].final_states()["ssm"]  # the NumPy engine's
    want = np.stack([st["re"], st["im"]], axis=-1).reshape(2, -1)
    assert np.any(want != 0)
    assert lay._quiet == {"ssm"}  # not rebuilt by the run: nothing read it (the sequence end reads the readout)
    assert np.array_equal(lay.view("ssm"), want)  # rebuilt when asked ...
    assert not lay._quiet and np.array_equal(lay.view("ssm"), want)  # ... once


@pytest.mark.parametrize("b_shift", ["uniform right", "uniform left", "none", "per channel"])
@pytest.mark.parametrize("frac", [12, 0, -1])
def test_every_bank_loop_variant_equals_numpy(b_shift: str, frac: int) -> None:
    """The bank's mode loop is compiled in variants: one shift for every channel or one per channel, constant 0
    left shifts or not (b_shift > 0 and F >= 0), and a mode whose state had no 0 at the last step skipping the
    active test and the OR, with a second pass when a 0 appears. States here rise from 0, decay back to exactly
    0 in silent stretches (re-entering the checking loop) and saturate: outputs, states and every count equal."""
    g = bank_graph(3, 6, 4, 0)
    h = 6
    shift = {"uniform right": np.full(h, 3, I), "uniform left": np.full(h, -2, I), "none": np.zeros(h, I),
             "per channel": np.array([3, -1, 0, 2, 5, -2], I)}[b_shift]
    node = g.node("ssm")
    a_re, a_im = (node.a_re >> 12 - frac, node.a_im >> 12 - frac) if frac >= 0 else (node.a_re >> 13, node.a_im >> 13)

    rng = np.random.default_rng(7)
    b = rng.integers(5, 41, (2, h, 4)) * rng.choice(np.array([-1, 1]), (2, h, 4))  # no quiet mode or channel:
    a_im = np.where(a_im == 0, 1, a_im) if frac == 12 else a_im  # every state moves: modes take the loop that
    # skips the checks (with F = 12; with F <= 0, a is an integer, 0 or a growth, checked as it comes)
    g.replace("ssm", dataclasses.replace(node, b_shift=shift, coef_frac_bits=frac, a_re=a_re, a_im=a_im,
                                         b_re=b[0].astype(I), b_im=b[1].astype(I), out_bits=12))
    x = rng.standard_normal((3, 60, 3)) * 30.0
    x[:, 10:40] = 0.0  # a long silence: the states decay to exactly 0, then move again
    kw = {"record": True, "counters": True, "batch_size": 2}
    comp = simulate(g, x, backend="compiled", **kw)
    ref = simulate(g, x, arith="reference", **kw)
    assert_identical(ref, comp, f"bank b_shift {b_shift}, F {frac}")
    states = ref.trace["ssm"]
    assert np.any(states[:, 9] != 0)
    assert np.any(states[:, 39] == 0) or frac != 12  # decayed to 0 in the silence
    assert ref.saturations["ssm"] > 0 or b_shift != "uniform left"  # left shifts drive it into saturation
