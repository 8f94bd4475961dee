"""The report's comparison columns recomputed by hand on a small SSM model: each counts what it says."""

from __future__ import annotations

import numpy as np
import pytest

from neurocompile.cost.energy import estimate, float_macs_per_sample
from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.sim.engine import simulate
from neurocompile.target import load_target


def arr(*v: int) -> np.ndarray:
    return np.array(v, np.int64)


def ssm_model() -> Graph:
    """x(1) -> bank (1 channel, 2 modes) -> readout(1) -> lif(1) -> mix (2x1 dense) -> acc(2) => decoder (3x2)."""
    g = Graph("ssm")
    g.add("x", hw.QInput(size=1, out_scale=1.0, out_bits=8))
    g.add("bank", hw.QModeBank(a_re=np.array([[2048, 1024]]), a_im=np.array([[0, 0]]), b_re=np.array([[1, 2]]),
                               b_im=np.array([[0, 1]]), b_shift=arr(0), out_bits=24), "x")
    g.add("ro", hw.QModeReadout(c_re=np.array([[1, 1]]), c_im=np.array([[0, 1]]), d=arr(1), shift=arr(0),
                                out_bits=16), {"state": "bank", "skip": "x"})
    g.add("lif", hw.QLIF(decay=0, vth=arr(1)), "ro")
    g.add("mix", hw.QDense(weight=np.array([[1], [2]]), bias=arr(0, 0), shift=arr(0, 0), out_bits=8), "lif")
    g.add("acc", hw.QAccumulate(size=2, out_bits=16), "mix")
    g.add("decoder", hw.QDense(weight=np.ones((3, 2), np.int64), bias=arr(0, 0, 0), shift=arr(0, 0, 0), out_bits=0),
          "acc")
    g.inputs, g.outputs = ["x"], ["decoder"]
    return g


def test_float_macs_count_the_decoder_once_per_sample():
    steps = 5
    # per step: bank 4 x 2 modes + 2 x 2 (input) = 12; readout 2 x 1 x 2 + 1 = 5; mix 2; decoder (after the
    # accumulate, a sequence-end node) 6 once per sample
    assert float_macs_per_sample(ssm_model(), steps) == (12 + 5 + 2) * steps + 6


def test_each_baseline_column_by_hand():
    g = ssm_model()
    tgt = load_target("loihi2")
    x = np.array([[[3], [0], [1], [0], [0]]], np.float64)
    r = simulate(g, x, target=tgt)
    c = {lc.name: lc for lc in r.counts.layers}
    macs = float_macs_per_sample(g, 5)
    rep = estimate(r.counts, tgt, float_macs_per_sample=macs)
    cv, cp = tgt.convention, tgt.conventional
    # (b) mixing only: the feature-mixing denses (mix, decoder) only, not the bank's input nor the readout
    ann = (c["mix"].synops_dense + c["decoder"].synops_dense) * cv.mac_pj * 1e-12
    assert c["mix"].synops_dense == 2 * 5 and c["decoder"].synops_dense == 6  # the decoder runs once
    snn = ((c["mix"].synops_effective_ac + c["decoder"].synops_effective_ac) * cv.ac_pj
           + (c["mix"].synops_effective_mac + c["decoder"].synops_effective_mac) * cv.mac_pj) * 1e-12
    mix = rep.conventions["mixing_only"]
    assert mix["ann_energy_j"] == pytest.approx(ann) and mix["snn_energy_j"] == pytest.approx(snn)
    assert mix["ann_macs"] == 16
    # (b') + state updates and the SSM's input / readout ops, as MACs on both sides
    st = rep.conventions["with_state_updates"]
    state = c["bank"].state_update_ops * cv.mac_pj * 1e-12
    io_ann = (c["bank"].synops_dense + c["ro"].synops_dense) * cv.mac_pj * 1e-12
    io_snn = (c["bank"].synops_effective + c["ro"].synops_effective) * cv.mac_pj * 1e-12
    assert st["ann_energy_j"] == pytest.approx(ann + state + io_ann)
    assert st["snn_energy_j"] == pytest.approx(snn + state + io_snn)
    # (c) conventional processor: the float graph's MACs, decoder once
    assert rep.conventional_processor["float_macs_per_sample"] == 101
    assert rep.conventional_processor["energy_per_sample_j"] == pytest.approx(101 * cp.float_mac_pj * 1e-12)
    fetch = cp.sram_access_pj * cp.weight_bits / cp.sram_word_bits
    assert rep.conventional_processor["energy_with_weight_fetch_per_sample_j"] == pytest.approx(
        101 * (cp.float_mac_pj + fetch) * 1e-12)
    # host work: the decoder's 6 ops at the host's MAC price, not chip energy; the decoder has no core
    assert rep.host["energy_per_sample_j"] == pytest.approx(6 * cp.float_mac_pj * 1e-12)
    dec = next(le for le in rep.layers if le.name == "decoder")
    assert not dec.on_chip and dec.energy_j == 0 and dec.cores == ()
