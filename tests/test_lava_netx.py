"""netx HDF5 export: layout, determinism, honest exactness flags, and (with Lava) that an 'exact' file,
read the way netx reads it, runs on Lava's own Dense + LIF exactly as the simulator runs the graph."""

from __future__ import annotations

import hashlib

import h5py
import numpy as np
import pytest

from neurocompile.backends.lava import from_lava_layers, lava_available, write_netx
from neurocompile.ir import hw
from neurocompile.ir.graph import Graph


def needs_lava(test):
    """Marks a test that runs Lava (select with ``-m lava``); skips it when lava-nc 0.10.0 does not import."""
    return pytest.mark.lava(pytest.mark.skipif(not lava_available(), reason="lava-nc 0.10.0 not importable")(test))


def _exact_graph() -> Graph:
    rng = np.random.default_rng(3)
    return from_lava_layers([
        {"weights": rng.integers(-120, 120, (6, 10)), "weight_exp": 0, "num_weight_bits": 8, "du": 4095, "dv": 300,
         "vth": 30, "bias_mant": np.arange(6) * 64 - 128, "bias_exp": 0},
        {"weights": rng.integers(0, 200, (3, 6)), "weight_exp": 0, "num_weight_bits": 7, "du": 0, "dv": 4095,
         "vth": 40, "bias_mant": 1, "bias_exp": 6},
    ])


def test_layout_and_flags(tmp_path) -> None:
    rep = write_netx(_exact_graph(), tmp_path / "net.h5")
    assert [ly.kind for ly in rep.layers] == ["input", "dense", "dense"]
    assert [ly.exact for ly in rep.layers] == [False, True, True] and not rep.skipped
    with h5py.File(tmp_path / "net.h5") as f:
        ly = f["layer/1"]
        assert ly["type"][()] == b"dense" and ly["neuron/type"][()] == b"CUBA"
        assert ly["weight"].shape == (6, 10) and int(ly["inFeatures"][()]) == 10 and int(ly["outFeatures"][()]) == 6
        assert int(ly["neuron/iDecay"][()]) == 4096 and int(ly["neuron/vDecay"][()]) == 300
        assert int(ly["neuron/vThMant"][()]) == 30
        assert ly["neuron/bias"][()].tolist() == [-2, -1, 0, 1, 2, 3]
        assert ly.attrs["neurocompile_node"] == "dense0,lif0" and bool(ly.attrs["neurocompile_exact"])


def test_complex_modes_and_skipped_nodes(tmp_path) -> None:
    g = Graph("ssm")
    g.add("x", hw.QInput(size=2))
    g.inputs = ["x"]
    a = np.full((2, 3), 3000, np.int64)
    g.add("mb", hw.QModeBank(a_re=a, a_im=a // 3, b_re=np.arange(6).reshape(2, 3), b_im=-np.arange(6).reshape(2, 3),
                             b_shift=np.zeros(2, np.int64)), "x")
    g.add("ro", hw.QModeReadout(c_re=np.ones((2, 3), np.int64), c_im=np.ones((2, 3), np.int64),
                                d=np.ones(2, np.int64), shift=np.zeros(2, np.int64)), {"state": "mb", "skip": "x"})
    g.outputs = ["ro"]
    rep = write_netx(g, tmp_path / "ssm.h5")
    assert rep.skipped == {"ro": "QModeReadout has no netx layer"} and not rep.exact
    with h5py.File(tmp_path / "ssm.h5") as f:
        wr, wi = f["layer/1/weight/real"][()], f["layer/1/weight/imag"][()]
        assert wr.shape == (6, 2) and wr[4, 1] == 4 and wr[4, 0] == 0 and wi[5, 1] == -5
        assert f["layer/1/neuron/type"][()] == b"RF_PHASE"
        assert "ro" in f.attrs["neurocompile_skipped"]


def test_bytes_are_deterministic(tmp_path) -> None:
    digests = []
    for i in range(2):
        write_netx(_exact_graph(), tmp_path / f"n{i}.h5")
        digests.append(hashlib.sha256((tmp_path / f"n{i}.h5").read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def _netx_optimize_weight_bits(weight: np.ndarray) -> tuple[np.ndarray, int, int, str]:
    """lava-dl netx.utils.optimize_weight_bits (lava-dl 0.6), for weights netx does not clip."""
    mx, mn = weight.max(), weight.min()
    if mx < 0:
        mode, signed, scale = "INHIBITORY", 0, -256 / mn
    elif mn >= 0:
        mode, signed, scale = "EXCITATORY", 0, 255 / mx
    else:
        mode, signed, scale = "MIXED", 1, min(127 / mx, -128 / mn)
    scale_bits = int(np.floor(np.log2(scale))) + signed
    n = 8
    while n > 0 and np.abs(weight / 2 ** n - np.round(weight / 2 ** n)).sum() != 0:
        n -= 1
    n -= signed
    return weight << scale_bits, 8 - scale_bits - n, -scale_bits, mode


@needs_lava
def test_exact_layers_run_on_lava_as_netx_would_build_them(tmp_path) -> None:
    """Read the file as netx does (du = iDecay - 1, bias_exp = 6, optimize_weight_bits) and build plain Lava."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor
    from lava.utils.weightutils import SignMode

    from neurocompile.backends.lava.compare import simulate_reference

    graph = _exact_graph()
    write_netx(graph, tmp_path / "net.h5")
    rng = np.random.default_rng(5)
    t_len = 30
    spikes = (rng.random((t_len, 10)) < 0.5).astype(np.int64)
    procs = [RingBuffer(data=spikes.T.astype(np.int32))]
    with h5py.File(tmp_path / "net.h5") as f:
        for i in (1, 2):
            ly, nr = f[f"layer/{i}"], f[f"layer/{i}/neuron"]
            w, nwb, wexp, mode = _netx_optimize_weight_bits(ly["weight"][()].astype(np.int64))
            dense = Dense(weights=w, weight_exp=wexp, num_weight_bits=nwb, sign_mode=SignMode[mode])
            lif = LIF(shape=(w.shape[0],), du=int(nr["iDecay"][()]) - 1, dv=int(nr["vDecay"][()]),
                      vth=int(nr["vThMant"][()]), bias_mant=nr["bias"][()], bias_exp=6)
            procs[-1].s_out.connect(dense.s_in)
            dense.a_out.connect(lif.a_in)
            procs += [dense, lif]
    mon = Monitor()
    mon.probe(procs[-1].s_out, t_len)
    try:
        procs[-1].run(RunSteps(num_steps=t_len), Loihi2SimCfg(select_tag="fixed_pt"))
        s = np.rint(mon.get_data()[procs[-1].name]["s_out"]).astype(np.int64)
    finally:
        procs[-1].stop()
    ref = simulate_reference(graph, spikes[None].astype(float))
    assert ref.traces["lif1"].any()
    np.testing.assert_array_equal(ref.traces["lif1"][0], s)


def _big_bank_graph(h: int = 100, m: int = 16) -> Graph:
    rng = np.random.default_rng(7)
    g = Graph("bigssm")
    g.add("x", hw.QInput(size=h))
    g.inputs = ["x"]
    a = np.full((h, m), 3000, np.int64)
    g.add("mb", hw.QModeBank(a_re=a, a_im=a // 3, b_re=rng.integers(1, 127, (h, m)), b_im=-rng.integers(0, 5, (h, m)),
                             b_shift=np.zeros(h, np.int64)), "x")
    g.outputs = ["mb"]
    return g


def test_large_mode_bank_stores_only_the_diagonal_chunks(tmp_path) -> None:
    """A [H*M, H] block-diagonal input matrix over 1 MiB keeps only its H/8 diagonal chunks; read back it is the
    dense matrix (row r: b[r // M, r % M] at column r // M), and two writes give the same bytes."""
    h, m = 100, 16  # 100 * 16 * 100 * 8 B = 1.28 MB dense; 100 is not a multiple of the 8-channel tile
    g = _big_bank_graph(h, m)
    bank = g.node("mb")
    digests = []
    for i in range(2):
        write_netx(g, tmp_path / f"b{i}.h5")
        digests.append(hashlib.sha256((tmp_path / f"b{i}.h5").read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    assert (tmp_path / "b0.h5").stat().st_size < h * m * h * 8 // 20
    rows = np.arange(h * m)
    with h5py.File(tmp_path / "b0.h5") as f:
        for key, b in (("real", bank.b_re), ("imag", bank.b_im)):
            ds = f[f"layer/1/weight/{key}"]
            assert ds.id.get_num_chunks() == -(-h // 8)
            want = np.zeros((h * m, h), np.int64)
            want[rows, rows // m] = b.reshape(-1)
            np.testing.assert_array_equal(ds[()], want)
            assert ds.dtype == np.int64
