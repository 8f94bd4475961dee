"""benchmarks/sim_throughput.py compares like with like: its float32 baseline runs on the simulator's thread count."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from threadpoolctl import threadpool_info


def _bench():
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "sim_throughput.py"
    spec = importlib.util.spec_from_file_location("sim_throughput", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("sim_throughput", mod)
    spec.loader.exec_module(mod)
    return mod


def _blas_threads() -> list[int]:
    return [int(p["num_threads"]) for p in threadpool_info() if p.get("user_api") == "blas"]


def test_baseline_blas_runs_on_the_simulators_thread_count(monkeypatch):
    b = _bench()
    seen: list[list[int]] = []

    def rate(shapes, batch, repeats):
        seen.append(_blas_threads())
        return 1.0, 1.0

    monkeypatch.setattr(b, "_float32_rate", rate)
    before = _blas_threads()
    for threads in (1, 2):
        assert b.float32_baseline([(8, 8)], 4, threads=threads) == (1.0, 1.0)
    if before:  # a BLAS is loaded (numpy's): its threads were limited inside, restored after
        assert seen == [[1] * len(before), [min(2, n) for n in before]]
        assert _blas_threads() == before
    assert b.blas_threads() == max(before, default=0)


def test_baseline_rate_counts_the_macs():
    b = _bench()
    wall, cpu = b.float32_baseline([(16, 32), (32, 8)], 4, threads=1)
    assert wall > 0 and cpu > 0


def test_compiled_blas_row_runs_no_event_driven_dense(monkeypatch, capsys):
    """The benchmark's compiled-blas row is the compiled step with every whole dense as a BLAS product (so the
    event-driven denses' share of the ratio is seen); the compiled row takes the event-driven path for spikes."""
    from neurocompile.sim import compiled_nodes, compiled_whole

    b = _bench()
    calls: list[int] = []
    real = compiled_whole.dense_sparse

    def spy(*a):
        calls.append(1)
        return real(*a)
    monkeypatch.setattr(compiled_whole, "dense_sparse", spy)
    before = compiled_nodes.SPARSE_MAX
    args = ["--hidden", "128", "--modes", "2", "--layers", "1", "--batch", "16", "--steps", "8", "--samples", "16",
            "--repeats", "1"]
    b.main([*args, "--backends", "compiled-blas"])
    assert not calls and compiled_nodes.SPARSE_MAX == before  # restored after the run
    b.main([*args, "--backends", "compiled"])
    assert calls
    assert "synaptic events with a non-zero input" in capsys.readouterr().out
