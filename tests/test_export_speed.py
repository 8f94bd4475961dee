"""What keeps large exports fast must not change what they write: graph.json text equals json.dumps's, large
arrays are stored or deflated at level 1 and load back identical, and saving stays byte-deterministic."""

from __future__ import annotations

import json
import math
import random
import zipfile

import numpy as np
import pytest

from neurocompile.errors import IRError
from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.ir.serialize import _json_bytes, graph_to_bytes, load_graph, save_graph


def _reference(d: object) -> bytes:
    return (json.dumps(d, sort_keys=True, indent=1, allow_nan=False, ensure_ascii=True) + "\n").encode("ascii")


def _random_value(rng: random.Random, depth: int) -> object:
    kind = rng.randrange(9 if depth < 4 else 5)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, -1, 7, 2**70, -(2**63)])
    if kind == 2:
        return rng.choice([0.0, -0.0, 1e-300, 1.5e300, 0.1, -2.5, float(rng.random())])
    if kind == 3:
        return rng.choice(["", "a", "é\u2028\"\\\n", "x" * 30, "\U0001f600"])
    if kind == 4:
        return []
    if kind == 5:
        return [rng.random() * 10 ** rng.randrange(-8, 8) for _ in range(rng.randrange(1, 20))]
    if kind == 6:
        return [rng.randrange(-(2**40), 2**40) for _ in range(rng.randrange(1, 20))]
    if kind == 7:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(0, 5))]
    return {rng.choice(["b", "a", "é", "Z", "a b", ""]) + str(i): _random_value(rng, depth + 1)
            for i in range(rng.randrange(0, 5))}


def test_graph_json_text_equals_json_dumps() -> None:
    rng = random.Random(11)
    for _ in range(300):
        d = {"root": _random_value(rng, 0), "mix": [1, 2.0, True, None, "s", [0.5, 1.5], [3, True], {}]}
        assert _json_bytes(d) == _reference(d)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_graph_json_refuses_non_finite_numbers(bad: float) -> None:
    with pytest.raises(ValueError):
        _json_bytes({"x": [1.0, bad]})
    with pytest.raises(ValueError):
        _json_bytes({"x": bad})


def test_non_string_keys_are_written_as_json_dumps_writes_them() -> None:
    d = {"a": {2: "x", 1: [0.5]}}
    assert _json_bytes(d) == _reference(d)


def _graph(n: int, h: int = 64, modes: int = 4) -> Graph:
    """An integer graph whose dense weights are ``n x n`` (big arrays when n is large) and a float list in meta."""
    rng = np.random.default_rng(1)
    g = Graph("big")
    g.add("x", hw.QInput(size=n))
    g.inputs = ["x"]
    g.add("fc", hw.QDense(weight=rng.integers(-100, 100, (n, n)), bias=np.zeros(n, np.int64),
                          shift=np.zeros(n, np.int64)), "x")
    g.outputs = ["fc"]
    g.meta = {"basis": [rng.random(h * modes).tolist(), rng.random(h * modes).tolist()], "note": "é"}
    return g


def test_large_arrays_are_deflated_fast_and_load_back_identical(tmp_path) -> None:
    g = _graph(400)  # 400 x 400 int64 = 1.28 MB: over the 128 KiB threshold
    g.meta["quant"] = {"scale": np.float64(0.25), "bits": 8}
    save_graph(g, tmp_path / "a")
    save_graph(g, tmp_path / "b")
    for name in ("graph.json", "weights.npz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    with zipfile.ZipFile(tmp_path / "a" / "weights.npz") as zf:
        info = zf.getinfo("fc/weight.npy")
        assert info.compress_type == zipfile.ZIP_DEFLATED
        assert info.compress_size < info.file_size // 2
        # level 1 is what makes it fast: a default-level deflate would give other bytes
        import zlib

        raw = zf.read("fc/weight.npy")
        lvl6 = zlib.compressobj(6, zlib.DEFLATED, -15)
        assert info.compress_size != len(lvl6.compress(raw) + lvl6.flush())
        assert zf.getinfo("fc/bias.npy").compress_type == zipfile.ZIP_DEFLATED
    back = load_graph(tmp_path / "a")
    np.testing.assert_array_equal(back.node("fc").weight, g.node("fc").weight)
    assert back.meta["basis"] == g.meta["basis"]
    js, _ = graph_to_bytes(back)
    assert js == (tmp_path / "a" / "graph.json").read_bytes()


def test_large_float_arrays_are_stored(tmp_path) -> None:
    from neurocompile.ir import nodes as fl

    rng = np.random.default_rng(2)
    g = Graph("f")
    g.add("x", fl.Input(size=600))
    g.inputs = ["x"]
    g.add("fc", fl.Affine(weight=rng.standard_normal((600, 600)).astype(np.float32),
                             bias=np.zeros(600, np.float32)), "x")
    g.outputs = ["fc"]
    save_graph(g, tmp_path / "f")  # 600 x 600 float32 = 1.44 MB
    with zipfile.ZipFile(tmp_path / "f" / "weights.npz") as zf:
        assert zf.getinfo("fc/weight.npy").compress_type == zipfile.ZIP_STORED
    np.testing.assert_array_equal(load_graph(tmp_path / "f").node("fc").weight, g.node("fc").weight)


def test_small_graphs_keep_the_default_deflate(tmp_path) -> None:
    """Arrays under 128 KiB (every shipped model's: 33 kB at most) are written as before: default-level deflate."""
    g = _graph(100)  # 100 x 100 int64 = 80 kB
    save_graph(g, tmp_path / "s")
    import zlib

    with zipfile.ZipFile(tmp_path / "s" / "weights.npz") as zf:
        info = zf.getinfo("fc/weight.npy")
        c = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        assert info.compress_size == len(c.compress(zf.read("fc/weight.npy")) + c.flush())


def test_non_finite_meta_still_names_the_field(tmp_path) -> None:
    g = _graph(4)
    g.meta["basis"][1][3] = math.inf
    with pytest.raises(IRError, match=r"graph.meta.basis\[1\]\[3\]"):
        save_graph(g, tmp_path / "n")


@pytest.mark.parametrize("seed", range(6))
def test_width_search_simulation_equals_the_numpy_kernels(seed: int) -> None:
    """The numba loop of the state-width search gives the integers of sim/kernels.py's NumPy form, with
    saturating states and outputs, per-channel left and right shifts, complex input coefficients and f = 0."""
    from neurocompile.passes.ssmquant import _simulate, _simulate_numpy

    rng = np.random.default_rng(seed)
    b, t, h, m = 3, 17, 5, 4
    f = [12, 0, 5][seed % 3]
    bits = [8, 10, 0][seed % 3]
    a_re = rng.integers(-(1 << f) if f else -1, (1 << f) + 1 if f else 2, (h, m))
    a_im = rng.integers(-(1 << f) if f else -1, (1 << f) + 1 if f else 2, (h, m))
    bank = hw.QModeBank(a_re=a_re, a_im=a_im, b_re=rng.integers(-50, 50, (h, m)),
                        b_im=rng.integers(-50, 50, (h, m)) if seed % 2 else np.zeros((h, m), np.int64),
                        b_shift=rng.integers(-2, 5, h), coef_frac_bits=f, out_bits=bits)
    ro = hw.QModeReadout(c_re=rng.integers(-9, 9, (h, m)), c_im=rng.integers(-9, 9, (h, m)),
                         d=rng.integers(-9, 9, h), shift=rng.integers(-1, 6, h), out_bits=[6, 12, 0][seed % 3])
    u = rng.integers(-127, 128, (b, t, h))
    got, want = _simulate(bank, ro, u), _simulate_numpy(bank, ro, u)
    assert got.dtype == np.int64 and got.shape == (b, t, h)
    np.testing.assert_array_equal(got, want)
    if bits:
        assert np.abs(want).max() > 0


def _first_shifts_scalar(w_hat, mag, peak, wmax, acc_limit, lim_in):
    """ssmquant._first_shifts as it was, one row at a time with math.log2 (the oracle)."""
    n_out = w_hat.shape[0]
    shift = np.zeros(n_out, np.int64)
    live = np.zeros(n_out, bool)
    for o in range(n_out):
        worst = float(np.abs(w_hat[o]) @ lim_in)
        cands = []
        if peak[o] > 0:
            cands.append(math.floor(math.log2(wmax / float(peak[o]))))
        if worst > 0 and math.isfinite(acc_limit):
            cands.append(math.floor(math.log2(acc_limit / worst)))
        if cands:
            shift[o], live[o] = min(cands), True
    return shift, live


@pytest.mark.parametrize("seed", range(8))
def test_readout_rows_equal_the_row_by_row_arithmetic(seed: int) -> None:
    """All rows' first shifts at once give quantize_rows's row-by-row integers, also for rows whose bounds sit
    exactly on a power of two (where a last-bit difference would move the floor), zero rows, ternary rows and an
    unbounded accumulator."""
    from neurocompile.passes import ssmquant
    from neurocompile.passes.ssmquant import readout_rows

    rng = np.random.default_rng(seed)
    m = 9
    lims = np.array([127] * (2 * m) + [255], np.float64)
    w = rng.standard_normal((64, 2 * m + 1)) * 10.0 ** rng.uniform(-4, 2, (64, 1))
    w[0] = 0.0
    w[1] = np.where(rng.random(2 * m + 1) < 0.5, 0.25, -0.25)  # ternary
    wmax, acc = 127, float(2**23 - 1)
    w[2] *= (wmax / 2**3) / np.abs(w[2]).max()  # wmax / peak = 2^3 exactly
    w[3] *= (acc / 2**5) / (np.abs(w[3]) @ lims)  # acc / worst at (or a bit off) 2^5
    w[4, :] = 0.0
    w[4, 5] = acc / 2**6 / 127  # one term: acc / worst = 2^6 exactly
    for acc_limit in (acc, math.inf, 1e4):
        got = readout_rows(w, wmax, acc_limit, lims)
        with pytest.MonkeyPatch.context() as mp:  # the same rows with the first shifts taken row by row
            mp.setattr(ssmquant, "_first_shifts", _first_shifts_scalar)
            want = readout_rows(w, wmax, acc_limit, lims)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_streamed_percentile_skips_chunks_that_add_nothing_to_a_tail(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks inside both kept tails leave them as they are (no partition), and the percentile is still
    np.percentile's over every value."""
    from neurocompile.passes import calibrate

    rng = np.random.default_rng(5)
    first = rng.standard_normal(20_000) * 5.0
    rest = [rng.uniform(-1.0, 1.0, 5_000) for _ in range(6)]  # well inside the 99th-percentile tails
    a = np.concatenate([first, *rest])
    s = calibrate._Stream(a.size, 99.0)
    s.add(first)
    calls = []
    real = calibrate._top
    monkeypatch.setattr(calibrate, "_top", lambda x, k, **kw: calls.append(x.size) or real(x, k, **kw))
    for part in rest:
        s.add(part)
    assert calls == []
    got = s.stats("percentile", a)
    lo, hi = np.percentile(a, [1.0, 99.0])
    assert got["hi"] == max(hi, 0.0) and got["lo"] == min(lo, 0.0)
    s.add(np.array([100.0]))  # a new largest value enters the upper tail only
    assert len(calls) == 1


@pytest.mark.parametrize("seed", [0, 1])
def test_report_integer_run_equals_the_reference_runner(seed: int) -> None:
    """The quantisation report's integer run (the NumPy engine) gives run_int's outputs, traces (sequence-end
    values as [B, 1, n]) and saturations, on a graph with every integer node type and on a token graph."""
    from int_graphs import every_node_graph, token_graph

    from neurocompile.passes._intrun import run_int
    from neurocompile.passes.report import int_run

    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, 5, (4, 7))
    for g, x in ((every_node_graph(seed), rng.normal(0, 1.5, (5, 12, 3))), (token_graph(seed), tokens),
                 (token_graph(seed), tokens.astype(np.float32))):  # float token ids: run_int itself
        a, b = int_run(g, x), run_int(g, x, record=True)
        assert set(a.trace) == set(b.trace) and set(a.outputs) == set(b.outputs)
        for k, v in b.trace.items():
            assert a.trace[k].shape == v.shape and np.array_equal(a.trace[k], v), k
        for k, v in b.outputs.items():
            assert np.array_equal(a.outputs[k], v), k
        assert {k: v for k, v in a.saturations.items() if v} == {k: v for k, v in b.saturations.items() if v}
    assert any(v for v in run_int(every_node_graph(0), np.random.default_rng(0).normal(0, 1.5, (5, 12, 3))
                                  ).saturations.values())


def test_tail_partition_in_place_gives_np_partitions_values_in_its_order() -> None:
    """A scratch array partitioned in place gives exactly np.partition's tail (the same values in the same order,
    signed zeros and ties included), and the caller's array is left untouched otherwise."""
    from neurocompile.passes.calibrate import _top

    rng = np.random.default_rng(9)
    for _ in range(50):
        a = np.round(rng.standard_normal(int(rng.integers(1, 400))), 1) * rng.choice([1.0, -1.0], 1)
        a[rng.random(a.size) < 0.1] = -0.0
        k = int(rng.integers(1, 50))
        want = a.copy() if a.size <= k else np.partition(a, a.size - k)[a.size - k:]
        keep = a.copy()
        got = _top(a, k)
        assert np.array_equal(a, keep) and np.array_equal(np.signbit(a), np.signbit(keep))
        got_own = _top(a.copy(), k, own=True)
        for g in (got, got_own):
            assert np.array_equal(g, want) and np.array_equal(np.signbit(g), np.signbit(want))
