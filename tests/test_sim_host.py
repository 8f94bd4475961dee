"""The compiled engine's scratch pool: lends, takes back only what it lent, bounds what it keeps, and a
simulation that reuses its buffers gives the same results as a fresh one."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from neurocompile.sim.host import ScratchPool


def test_a_given_back_array_is_lent_again_and_a_view_gives_back_the_whole():
    pool = ScratchPool(limit=1 << 30, min_bytes=0)
    a = pool.take(1000)
    a[:] = 7
    pool.give(a.reshape(10, 100)[2:])  # any view of it
    b = pool.take(900, np.int64)  # fits (at most twice as large): the same memory
    assert b.size == 900 and np.shares_memory(a, b)
    assert pool.take(1000).size == 1000 and not np.shares_memory(pool.take(1000), b)


def test_foreign_arrays_and_other_dtypes_are_not_taken():
    pool = ScratchPool(limit=1 << 30, min_bytes=0)
    pool.give(np.empty(1000, np.int64))  # not lent by the pool: ignored
    assert pool.free_bytes() == 0
    a = pool.take(1000, np.float32)
    pool.give(a)
    assert pool.free_bytes() == 4000
    assert not np.shares_memory(pool.take(1000, np.int64), a)  # another dtype: a new array
    assert not np.shares_memory(pool.take(100, np.float32), a)  # over twice as large: not lent for 100


def test_the_pool_keeps_at_most_its_limit_dropping_the_oldest():
    pool = ScratchPool(limit=10_000, min_bytes=0)
    first, second = pool.take(1000), pool.take(1000)  # 8,000 bytes each
    pool.give(first)
    pool.give(second)
    assert pool.free_bytes() == 8000
    assert np.shares_memory(pool.take(1000), second)  # the newest was kept


def test_small_arrays_and_lost_arrays_are_not_held():
    pool = ScratchPool(limit=1 << 30, min_bytes=1 << 20)
    small = pool.take(10)
    pool.give(small)
    assert pool.free_bytes() == 0
    big = pool.take(1 << 18)
    del big
    gc.collect()
    assert len(pool._lent) == 0  # never given back: freed as usual, not kept alive by the pool


def test_compiled_runs_reusing_scratch_equal_fresh_and_numpy_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from test_sim_compiled import assert_identical
    from test_sim_compiled_throughput import _bench

    from neurocompile.sim import compiled
    from neurocompile.sim.engine import simulate
    from neurocompile.sim.host import POOL

    if not compiled.available():
        pytest.skip("numba is not installed")
    monkeypatch.setattr(POOL, "min_bytes", 0)  # every chunk buffer through the pool, however small
    g = _bench().build_model(hidden=32, modes=4, layers=2)
    x = np.random.default_rng(3).standard_normal((10, 70, 16)).astype(np.float32)
    kw = dict(batch_size=4, counters=True, record=True)  # 3 batches, the last short: chunks of two sizes
    first = simulate(g, x, backend="compiled", **kw)
    assert POOL.free_bytes() > 0  # the chunk arenas and dense buffers came back
    scribble = POOL.take(POOL._free[next(reversed(POOL._free))].size)
    scribble[:] = -12345  # a reused buffer holds old values: every word read must be written first
    POOL.give(scribble)
    again = simulate(g, x, backend="compiled", **kw)
    assert_identical(first, again, "scratch reused")
    assert_identical(first, simulate(g, x, backend="numpy", **kw), "compiled vs numpy")
    # batches in parallel threads take and give back at once (the pool's lock)
    assert_identical(first, simulate(g, x, backend="compiled", threads=3, **kw), "threads")


def test_a_one_shot_run_gives_the_scratch_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """runs._run (neurocompile simulate / report) clears the pool after its simulation, so that the float
    comparison after it does not stack on the free scratch; the library's simulate() keeps it for the next call."""
    from types import SimpleNamespace

    from neurocompile import runs
    from neurocompile.sim import engine
    from neurocompile.sim.host import POOL

    def fake_simulate(*a, **k):
        POOL.give(POOL.take(1 << 18))  # a run's chunk arena, back in the pool
        return "result"
    monkeypatch.setattr(POOL, "min_bytes", 0)
    monkeypatch.setattr(engine, "simulate", fake_simulate)
    fake_simulate()
    assert POOL.free_bytes() >= 1 << 21  # kept between library calls
    art = SimpleNamespace(target_spec=None, int_graph=SimpleNamespace(order=lambda: [], node=None))
    assert runs._run(art, SimpleNamespace(x=None), "sim", 1, None, False) == "result"
    assert POOL.free_bytes() == 0


def test_clear_drops_free_arrays_only() -> None:
    pool = ScratchPool(limit=1 << 30, min_bytes=0)
    a, b = pool.take(1000), pool.take(1000)
    pool.give(a)
    pool.clear()
    assert pool.free_bytes() == 0
    pool.give(b)  # still lent before the clear: taken back
    assert pool.free_bytes() == 8000
