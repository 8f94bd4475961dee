"""Bounded-memory calibration: chunked runs give the same statistics and the same integer graph."""

from __future__ import annotations

import numpy as np
import pytest

from neurocompile.passes import calibrate
from neurocompile.passes.calibrate import _Stream, chunk_plan, work_samples


@pytest.mark.parametrize("p", [99.99, 99.0, 90.0, 60.0])
def test_streamed_percentile_equals_numpy_on_all_values(p: float) -> None:
    rng = np.random.default_rng(0)
    for trial in range(60):
        n = int(rng.integers(1, 3000))
        a = rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4)
        if trial % 2:
            a = np.round(a)  # ties
        s = _Stream(n, p)
        for part in np.array_split(a, int(rng.integers(1, 6))):
            s.add(part)
        got = s.stats("percentile", a)
        lo, hi = np.percentile(a, [100 - p, p])
        assert got["hi"] == max(hi, 0.0) and got["lo"] == min(lo, 0.0)
        assert (got["min"], got["max"]) == (a.min(), a.max())


def test_chunk_plan_bounds_memory_and_names_what_does_not_fit() -> None:
    from neurocompile.errors import QuantizationError
    from neurocompile.frontend import load_model, trace

    g = trace(load_model("examples/checkpoints/spikingssm_sdigits.pt"))
    big = chunk_plan(g, 512, 64)
    assert big.chunk == 512 and big.keep == 512  # a small model: one call, everything traced
    small = chunk_plan(g, 512, 64, budget=4 * 2**20)
    assert 1 <= small.chunk < 512 and small.keep < 512
    assert 2 * small.chunk * small.bytes_per_sample <= 0.6 * 4 * 2**20
    timed = chunk_plan(g, 512, 64, budget=2**16)  # one sequence does not fit: chunks of time
    assert timed.chunk == 1 and 1 <= timed.steps < 64 and 2 * timed.steps * timed.bytes_per_sample // 64 <= 0.6 * 2**16
    assert chunk_plan(g, 512, 10**6).steps < 10**6  # no explicit budget: chunks of time too
    with pytest.raises(QuantizationError, match="one step .* MiB"):
        chunk_plan(g, 512, 64, budget=2**13)
    assert work_samples(g, 512, 64) == 512
    assert work_samples(g, 512, 10**7) == calibrate.MIN_SAMPLES
    assert chunk_plan(g, 512, 10**6).chunk == 1


def test_chunked_calibration_gives_the_same_integer_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    from neurocompile.datasets import load_dataset
    from neurocompile.frontend import load_model, trace
    from neurocompile.passes.pipeline import CompileOptions, compile_graph
    from neurocompile.target import load_target

    g = trace(load_model("examples/checkpoints/spikingssm_sdigits.pt"))
    x = load_dataset("sdigits", "train").x[:48].astype(np.float32)
    t = load_target("loihi2")
    a, _ = compile_graph(g, t, x, CompileOptions(calib_samples=48))
    monkeypatch.setattr(calibrate, "CHUNK_BYTES", 2 * chunk_plan(g, 48, 64).bytes_per_sample * 5)
    b, info = compile_graph(g, t, x, CompileOptions(calib_samples=48))
    assert info["passes"]["calibrate"]["samples"] == 48
    assert a.meta["calibration"] == b.meta["calibration"]
    for name in a.order():
        pa, pb = a.node(name).params(), b.node(name).params()
        assert pa.keys() == pb.keys() and all(np.array_equal(pa[k], pb[k]) for k in pa), name


def test_calibration_in_chunks_of_time_gives_the_same_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    from neurocompile.datasets import load_dataset
    from neurocompile.frontend import load_model, trace
    from neurocompile.passes.pipeline import CompileOptions, compile_graph
    from neurocompile.target import load_target

    g = trace(load_model("examples/checkpoints/spikingssm_sdigits.pt"))
    x = load_dataset("sdigits", "train").x[:12].astype(np.float32)
    t = load_target("loihi2")
    a, _ = compile_graph(g, t, x, CompileOptions(calib_samples=12))
    per = chunk_plan(g, 12, 64).bytes_per_sample
    monkeypatch.setattr(calibrate, "CHUNK_BYTES", 2 * per * 9 // 64)  # under one sequence per call
    b, info = compile_graph(g, t, x, CompileOptions(calib_samples=12))
    assert 1 <= info["passes"]["calibrate"]["chunk_steps"] < 64
    ca, cb = a.meta["calibration"]["nodes"], b.meta["calibration"]["nodes"]
    assert ca.keys() == cb.keys()
    for name in ca:
        for k in ca[name]:
            assert cb[name][k] == pytest.approx(ca[name][k], rel=1e-9, abs=1e-12), (name, k)
    for name in a.order():
        pa, pb = a.node(name).params(), b.node(name).params()
        assert pa.keys() == pb.keys() and all(np.array_equal(pa[k], pb[k]) for k in pa), name
