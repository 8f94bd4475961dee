"""A 2-worker Dask run gives exactly the single-process counts, predictions and outputs; clusters close on errors."""

from __future__ import annotations

import multiprocessing
import time

import numpy as np
import pytest

from neurocompile.errors import IRError
from neurocompile.sim.distributed import shard_bounds, simulate_distributed
from neurocompile.sim.engine import simulate

pytest.importorskip("dask.distributed")


def _graph():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_sim_exact import random_graph

    return random_graph(3)


def test_shard_bounds() -> None:
    assert shard_bounds(10, 3) == [(0, 3), (3, 7), (7, 10)]
    assert shard_bounds(2, 5) == [(0, 1), (1, 2)]
    assert shard_bounds(0, 2) == [(0, 0)] or shard_bounds(0, 2) == []


def test_two_workers_equal_one_process() -> None:
    g = _graph()
    x = np.random.default_rng(0).standard_normal((9, 6, g.node("x").size)) * 20
    one = simulate(g, x, target="loihi2", record_sample=6, batch_size=4)
    two = simulate_distributed(g, x, workers=2, target="loihi2", record_sample=6, batch_size=4)
    assert two.counts == one.counts
    assert np.array_equal(two.predictions, one.predictions)
    for k, v in one.outputs.items():
        assert np.array_equal(two.outputs[k], v), k
    assert two.spikes == one.spikes and two.saturations == one.saturations
    assert all(np.array_equal(two.spikes_per_step[k], v) for k, v in one.spikes_per_step.items())
    assert two.record_sample == 6
    assert all(np.array_equal(two.sample_trace[k], v) for k, v in one.sample_trace.items())


def test_cluster_closed_when_a_worker_fails() -> None:
    g = _graph()
    from neurocompile.ir.nodes import Affine

    g.replace("lif", Affine())  # not an integer node: simulate() raises inside the worker
    x = np.zeros((4, 2, g.node("x").size))
    with pytest.raises(IRError, match="not an integer node"):
        simulate_distributed(g, x, workers=1)
    deadline = time.time() + 10
    while multiprocessing.active_children() and time.time() < deadline:
        time.sleep(0.2)
    assert not [p for p in multiprocessing.active_children() if "resource_tracker" not in p.name]
