"""Distributed simulation: the samples of a dataset sharded over processes with dask.distributed.

Samples are independent, so the run splits into contiguous shards, each simulated by
:func:`neurocompile.sim.engine.simulate` in a worker process, and merged in order by
:func:`~neurocompile.sim.engine.merge_results`: counts, spikes and saturations add, outputs and predictions
concatenate. The placement is computed once, here, so every shard counts messages on the same cores. The result
is identical to a single-process run (tests check counts and predictions are equal).

A local cluster (``LocalCluster(n_workers=workers, threads_per_worker=1, processes=True)``) is started and closed
by each call, also when a worker fails or the user presses Ctrl-C; with ``scheduler_address`` an existing cluster
is used and only the client is closed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from neurocompile.errors import NeurocompileError
from neurocompile.ir.graph import Graph
from neurocompile.mapping.placement import Placement, place
from neurocompile.sim.engine import SimResult, _inputs, merge_results, simulate

__all__ = ["simulate_distributed", "shard_bounds"]

# One BLAS thread per worker process: the processes are the parallelism.
_WORKER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def shard_bounds(n: int, shards: int) -> list[tuple[int, int]]:
    """``shards`` contiguous [start, stop) ranges covering 0..n, sizes differing by at most one (empty ones dropped)."""
    shards = max(1, min(int(shards), n)) if n else 1
    edges = np.linspace(0, n, shards + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _run_shard(graph: Graph, x: Any, kwargs: dict[str, Any]) -> SimResult:
    return simulate(graph, x, **kwargs)


def simulate_distributed(graph: Graph, x: np.ndarray | Mapping[str, np.ndarray], *, workers: int = 2,
                         scheduler_address: str | None = None, batch_size: int = 64, record: bool = False,
                         record_sample: int | None = None, counters: bool = True, target: Any = None,
                         placement: Placement | None = None, progress: bool = False, arith: str = "auto",
                         shards: int | None = None) -> SimResult:
    """Simulate ``graph`` on ``x`` over ``workers`` processes (or the cluster at ``scheduler_address``).

    Same arguments and result as :func:`~neurocompile.sim.engine.simulate`, plus ``workers`` (local processes),
    ``scheduler_address`` (e.g. 'tcp://10.0.0.2:8786'; ``workers`` is then ignored) and ``shards`` (tasks;
    default: the number of workers). Raises NeurocompileError when the cluster cannot be reached.
    """
    if workers < 1:
        raise NeurocompileError(f"workers must be at least 1, got {workers}")
    xs, n, _ = _inputs(graph, x)
    if placement is None and target is not None:
        if isinstance(target, str):
            from neurocompile.target import load_target

            target = load_target(target)
        placement = place(graph, target)
    bounds = shard_bounds(n, shards or workers)
    kw = dict(batch_size=batch_size, record=record, counters=counters, placement=placement, arith=arith)

    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    client = None
    try:
        try:
            if scheduler_address:
                client = Client(scheduler_address, timeout="30s")
            else:
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", silence_logs=logging.ERROR, env=_WORKER_ENV)
                client = Client(cluster)
        except (OSError, RuntimeError, TimeoutError) as e:
            where = scheduler_address or f"a local cluster of {workers} worker processes"
            raise NeurocompileError(f"cannot start or reach the dask scheduler ({where}): {e}") from None
        g_future = client.scatter(graph, broadcast=True)
        futures = []
        for i0, i1 in bounds:
            shard_x = {k: v[i0:i1] for k, v in xs.items()}
            rs = record_sample - i0 if record_sample is not None and i0 <= record_sample < i1 else None
            futures.append(client.submit(_run_shard, g_future, shard_x, {**kw, "record_sample": rs},
                                         pure=False, key=f"neurocompile-sim-{i0}-{i1}-{id(shard_x)}"))
        if progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            with Progress(TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TextColumn("shards"),
                          transient=True) as bar:
                task = bar.add_task("sim", total=len(futures))
                for _ in as_completed(futures):
                    bar.update(task, advance=1)
        parts = client.gather(futures)
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    result = merge_results(parts)
    return result
