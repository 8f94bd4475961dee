"""The speed measures of the compiled step leave results and the process alone: whole-chunk products run with
one BLAS thread inside the simulator and the caller's BLAS setting is back afterwards, batches in threads too."""

from __future__ import annotations

import numpy as np
import pytest
from test_sim_compiled import all_types_graph, all_types_inputs

from neurocompile.sim import compiled, host
from neurocompile.sim.engine import simulate

pytest.importorskip("numba")
threadpoolctl = pytest.importorskip("threadpoolctl")


def _blas_threads() -> list[int]:
    return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]


def test_whole_chunk_products_run_on_one_blas_thread_and_restore_it(monkeypatch: pytest.MonkeyPatch) -> None:
    before = _blas_threads()
    if not before:
        pytest.skip("no BLAS library reported by threadpoolctl")
    with host.one_blas_thread():
        assert set(_blas_threads()) == {1}
    assert _blas_threads() == before
    seen: list[list[int]] = []
    real = compiled.whole

    def spy(*a: object) -> int:
        seen.append(_blas_threads())
        return real(*a)
    monkeypatch.setattr(compiled, "whole", spy)
    monkeypatch.setattr(compiled, "WHOLE_MIN_ROWS", 1)
    monkeypatch.setattr(compiled, "WHOLE_MIN_WORK", 1)
    g = all_types_graph(0)
    x = all_types_inputs(g, 0, 6, 5)
    one = simulate(g, x, batch_size=2, threads=1, backend="compiled")
    par = simulate(g, x, batch_size=2, threads=3, backend="compiled")  # nested limits in worker threads
    assert seen and all(set(s) == {1} for s in seen)
    assert _blas_threads() == before
    assert np.array_equal(one.outputs["head"], par.outputs["head"]) and one.counts == par.counts
