"""The compiled step counts Loihi's event-driven neuron updates itself (no NumPy fallback with counters on)."""

from __future__ import annotations

import numpy as np
import pytest

from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.sim import compiled
from neurocompile.sim.engine import plan, simulate

pytest.importorskip("numba")
I = np.int64


def _cancelling(delay: int) -> Graph:
    """x -> dense (weights +1 and -1: a non-zero input arrives but sums to 0) -> LIF: synaptic events with zero
    input, which Loihi counts as neuron updates."""
    g = Graph("cancel")
    g.add("x", hw.QInput(size=2, out_scale=1.0, out_bits=8))
    g.inputs = ["x"]
    g.add("syn", hw.QDense(weight=np.array([[1, -1], [0, 0], [2, 0]], I), bias=np.zeros(3, I),
                           shift=np.zeros(3, I), delay=delay, out_bits=8), "x")
    g.add("lif", hw.QLIF(decay=0, vth=np.full(3, 100, I)), "syn")
    g.outputs = ["lif"]
    return g


@pytest.mark.parametrize("delay", [0, 2])
@pytest.mark.parametrize("whole_rows", [1, 10 ** 9])
def test_events_that_sum_to_zero_count_as_updates(delay: int, whole_rows: int,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    g = _cancelling(delay)
    monkeypatch.setattr(compiled, "WHOLE_MIN_ROWS", whole_rows)  # 'syn' over the whole chunk, or stepped
    monkeypatch.setattr(compiled, "WHOLE_MIN_WORK", 1)
    assert compiled.program(plan(g)).ev_src == {"lif": ["syn"]}
    x = np.zeros((3, 6, 2))
    x[:, :, :] = [1.0, 1.0]  # row 0 of syn: 1 - 1 = 0 (an event, no input); row 1: no synapse; row 2: 2
    x[1, 3] = 0.0  # one step without any input
    res = {b: simulate(g, x, backend=b, target="loihi2") for b in ("compiled", "numpy")}
    assert res["compiled"].backend == "compiled"
    lif = {b: r.counts.layer("lif").neuron_updates for b, r in res.items()}
    # steps delay .. 5 of 3 samples: row 0 updated by its events (zero sum) except after the hole; row 2 by its
    # input or its non-zero state; row 1 never. Counting non-zero inputs only would give 3 * (6 - delay).
    assert lif["compiled"] == lif["numpy"] == 6 * (6 - delay) - 1
    assert res["compiled"].counts == res["numpy"].counts


def test_counters_no_longer_fall_back() -> None:
    g = _cancelling(0)
    x = np.ones((2, 4, 2))
    assert simulate(g, x, target="loihi2").backend == "compiled"  # 'auto', counters on
    assert simulate(g, x, backend="compiled", target="loihi2").counts is not None


@pytest.mark.parametrize("uniform", [True, False])
def test_modebank_shift_uniform_or_per_channel(uniform: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled QModeBank's scalar-shift loop (one b_shift for all channels) and per-mode loop agree with
    the NumPy engine, fused readout included, over whole-chunk and stepped schedules."""
    rng = np.random.default_rng(3)
    h, m = 5, 3
    g = Graph("bank")
    g.add("x", hw.QInput(size=h, out_scale=0.1, out_bits=8))
    g.inputs = ["x"]
    g.add("enc", hw.QDense(weight=rng.integers(-50, 51, (h, h)).astype(I), bias=np.zeros(h, I),
                           shift=np.full(h, 2, I), out_bits=10), "x")
    ang = rng.uniform(-np.pi, np.pi, (h, m))
    g.add("ssm", hw.QModeBank(a_re=np.round(0.9 * np.cos(ang) * 4096).astype(I),
                              a_im=np.round(0.9 * np.sin(ang) * 4096).astype(I),
                              b_re=rng.integers(-90, 91, (h, m)).astype(I), b_im=rng.integers(-90, 91, (h, m)).astype(I),
                              b_shift=np.full(h, 3, I) if uniform else rng.integers(-2, 6, h).astype(I),
                              out_bits=14), "enc")
    g.add("ro", hw.QModeReadout(c_re=rng.integers(-30, 31, (h, m)).astype(I), c_im=rng.integers(-30, 31, (h, m)).astype(I),
                                d=rng.integers(-5, 6, h).astype(I), shift=np.full(h, 6, I), out_bits=10),
          {"state": "ssm", "skip": "enc"})
    g.add("lif", hw.QLIF(decay=2048, vth=np.full(h, 20, I)), "ro")
    g.outputs = ["ro", "lif"]
    x = rng.standard_normal((4, 12, h)) * 20
    for rows in (1, 10 ** 9):
        monkeypatch.setattr(compiled, "WHOLE_MIN_ROWS", rows)
        monkeypatch.setattr(compiled, "WHOLE_MIN_WORK", 1)
        a = simulate(g, x, backend="compiled", target="loihi2", record=True)
        b = simulate(g, x, backend="numpy", target="loihi2", record=True)
        assert a.counts == b.counts and a.saturations == b.saturations
        assert any(v > 0 for v in a.saturations.values())
        for k in b.trace:
            assert np.array_equal(a.trace[k], b.trace[k]), (rows, k)


@pytest.mark.parametrize("record", [False, True])
def test_bank_blocks_tiles_and_unwritten_output(record: bool) -> None:
    """A bank with per-channel shifts, a batch of more samples than one tile, and (not recorded) an output
    that only its fused readout reads, so the step skips writing it: outputs, final states, saturations and every
    counter (the bank's non-zero outputs per index included) equal the NumPy engine's."""
    from neurocompile.sim import compiled_kernels as ck

    rng = np.random.default_rng(5)
    h, m = 13, 7
    g = Graph("blocks")
    g.add("x", hw.QInput(size=4, out_scale=0.1, out_bits=8))
    g.inputs = ["x"]
    g.add("enc", hw.QDense(weight=rng.integers(-60, 61, (h, 4)).astype(I), bias=np.zeros(h, I),
                           shift=np.full(h, 1, I), out_bits=10), "x")
    ang = rng.uniform(-np.pi, np.pi, (h, m))
    g.add("ssm", hw.QModeBank(a_re=np.round(0.95 * np.cos(ang) * 4096).astype(I),
                              a_im=np.round(0.95 * np.sin(ang) * 4096).astype(I),
                              b_re=rng.integers(-90, 91, (h, m)).astype(I), b_im=rng.integers(-90, 91, (h, m)).astype(I),
                              b_shift=rng.integers(-2, 6, h).astype(I), out_bits=13), "enc")
    g.add("ro", hw.QModeReadout(c_re=rng.integers(-30, 31, (h, m)).astype(I), c_im=rng.integers(-30, 31, (h, m)).astype(I),
                                d=rng.integers(-5, 6, h).astype(I), shift=np.full(h, 7, I), out_bits=9),
          {"state": "ssm", "skip": "enc"})
    g.add("lif", hw.QLIF(decay=2048, vth=np.full(h, 20, I)), "ro")
    g.outputs = ["ro", "lif"]
    n = 2 * ck.TILE + 3
    x = rng.standard_normal((n, 9, 4)) * 30
    a = simulate(g, x, backend="compiled", target="loihi2", record=record, batch_size=n)
    b = simulate(g, x, backend="numpy", target="loihi2", record=record, batch_size=n)
    assert a.counts == b.counts and a.saturations == b.saturations and a.spikes == b.spikes
    assert a.saturations["ssm"] > 0
    for k in b.outputs:
        assert np.array_equal(a.outputs[k], b.outputs[k]), k
    if record:
        for k in b.trace:
            assert np.array_equal(a.trace[k], b.trace[k]), k
