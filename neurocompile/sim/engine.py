"""The integer simulator: runs a hardware (Q-node) graph over a dataset, bit-exactly, with activity counters.

:func:`simulate` steps time in ``graph.order()`` exactly as docs/semantics.md says, vectorised over the batch, the
channels and the compartments. Its arithmetic is the arithmetic of :mod:`neurocompile.sim.kernels` (the executable
specification); three interchangeable paths compute it (``arith``):

- ``'reference'``: every node through :func:`neurocompile.sim.kernels.step` (slow; the definition).
- ``'int64'``: fused NumPy int64 kernels with preallocated buffers for QDense, QModeBank and QModeReadout.
- ``'auto'`` (default): as ``'int64'``, but products whose exactness is proven at compile time run in floating
  point: QDense products in float32 BLAS when every partial sum stays below 2^24, in float64 BLAS below 2^53; the
  QModeBank recurrence and its QModeReadout in float64 when every intermediate value stays below 2^53. Past those
  bounds the node falls back to int64. ``SimResult.paths`` names the path each node took. The proof is in
  docs/simulator.md ("Exactness of the floating-point paths"); tests check the three paths agree bit for bit.

Counters (``SimResult.counts``, a :class:`~neurocompile.sim.counters.RunCounts`) are defined in docs/simulator.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurocompile.errors import DatasetError, IRError
from neurocompile.ir.graph import Graph
from neurocompile.mapping.placement import (
    Placement,
    place,
)
from neurocompile.sim.activity import _active_count, _layer_counts, _lut_ops, _messages_in  # noqa: F401
from neurocompile.sim.batch import _Acc, _Batch  # noqa: F401
from neurocompile.sim.counters import RunCounts
from neurocompile.sim.plan import (  # noqa: F401  (re-exported: the engine's public and internal names)
    ARITH,
    EXACT_F32,
    EXACT_F64,
    Array,
    _Plan,
    is_spiking,
    plan,
)

__all__ = ["SimResult", "simulate", "merge_results", "plan", "is_spiking", "ARITH", "EXACT_F32", "EXACT_F64"]



# ------------------------------------------------------------------------------------------------------------
# Result
# ------------------------------------------------------------------------------------------------------------

@dataclass
class SimResult:
    """What one simulation run produced. Arrays are int64; ``n`` samples, ``T`` steps.

    Attributes:
        outputs: output node -> values: [n, size] for sequence-end outputs (logits), [n, T, size] otherwise.
        predictions: [n] argmax of the first output (of its last step when per-step); ties: lowest index.
        spikes: spiking node (out_bits <= 2) -> total spikes (non-zero outputs) over the run.
        spikes_per_step: spiking node -> [T] spikes at each step, summed over samples.
        saturations: node -> values clipped to their declared width (all nodes, zeros included).
        counts: activity counters (None when ``counters=False``).
        trace: with ``record=True``, node -> every output: [n, T, size] for per-step nodes (QAccumulate: its
            running sum), [n, size] for nodes after a sequence end.
        final_states: with ``record=True``, node -> its state after the last step (kernels' names and shapes,
            batch axis first): QModeBank 're', 'im' [n, H, M]; QLIF 'v'; QRefractory 'v', 's', 'r'; QAccumulate
            'acc'; QDense with delay 'pipe' [n, delay, out] (index 0 is emitted next).
        sample_trace: with ``record_sample=i``, node -> sample i's outputs ([T, size] or [size]).
        record_sample: the sample index of ``sample_trace``.
        placement: the placement used for message and hop counts (None without a target).
        paths: node -> arithmetic path: 'float32-blas', 'float64-blas', 'float64', 'int64' or 'kernel'.
        samples, steps: n and T.
    """

    outputs: dict[str, Array]
    predictions: Array
    spikes: dict[str, int]
    spikes_per_step: dict[str, Array]
    saturations: dict[str, int]
    counts: RunCounts | None
    samples: int
    steps: int
    trace: dict[str, Array] | None = None
    final_states: dict[str, dict[str, Array]] | None = None
    sample_trace: dict[str, Array] | None = None
    record_sample: int | None = None
    placement: Placement | None = None
    paths: dict[str, str] = field(default_factory=dict)
    spiking: tuple[str, ...] = ()  # spiking nodes, graph order
    backend: str = "numpy"  # 'compiled' (one numba step for the whole graph) or 'numpy' (``paths`` apply)

    @property
    def sample_spikes(self) -> dict[str, Array]:
        """Spike raster of the recorded sample: spiking node -> [T, size] (empty without ``record_sample``)."""
        if not self.sample_trace:
            return {}
        return {n: self.sample_trace[n] for n in self.spiking if n in self.sample_trace}


# ------------------------------------------------------------------------------------------------------------
# Public entry point
# ------------------------------------------------------------------------------------------------------------

def _inputs(graph: Graph, x: Array | Mapping[str, Array]) -> tuple[dict[str, Array], int, int]:
    names = list(graph.inputs)
    if not names:
        raise IRError(f"graph '{graph.name}' has no inputs")
    if not isinstance(x, Mapping):
        if len(names) != 1:
            raise DatasetError(f"graph '{graph.name}' has {len(names)} inputs ({', '.join(names)}): pass x as a "
                               "dict {input name: array}")
        x = {names[0]: x}
    out: dict[str, Array] = {}
    n = steps = None
    for name in names:
        if name not in x:
            raise DatasetError(f"no data for input '{name}' of graph '{graph.name}'")
        node = graph.node(name)
        a = np.asarray(x[name])
        if node.tokens:
            if a.ndim == 3 and a.shape[2] == 1:
                a = a[:, :, 0]
            if a.ndim != 2 or not np.issubdtype(a.dtype, np.integer):
                raise DatasetError(f"input '{name}' takes token ids: expected an integer array [n, T], got "
                                   f"{a.dtype} {list(a.shape)}")
        else:
            if a.ndim == 2 and node.size == 1:
                a = a[:, :, None]
            if a.ndim != 3 or a.shape[2] != node.size:
                raise DatasetError(f"input '{name}' expects [n, T, {node.size}] features, got {list(a.shape)}")
        if n is None:
            n, steps = int(a.shape[0]), int(a.shape[1])
        elif (a.shape[0], a.shape[1]) != (n, steps):
            raise DatasetError(f"input '{name}' has {a.shape[0]} samples x {a.shape[1]} steps; expected {n} x {steps}")
        out[name] = a
    assert n is not None and steps is not None
    if steps < 1:
        raise DatasetError("inputs have no time steps (T = 0)")
    return out, n, steps


def simulate(graph: Graph, x: Array | Mapping[str, Array], *, batch_size: int = 64, record: bool = False,
             record_sample: int | None = None, counters: bool = True, target: Any = None,
             placement: Placement | None = None, progress: bool = False, arith: str = "auto",
             threads: int = 1, backend: str = "auto") -> SimResult:
    """Run the integer ``graph`` over dataset ``x`` bit-exactly (docs/semantics.md).

    Args:
        graph: a hardware graph (Q-nodes only).
        x: float features [n, T, d] (quantised by the graph's QInput), or int token ids [n, T]; a dict
            {input name: array} for graphs with several inputs.
        batch_size: samples simulated together (results do not depend on it).
        record: keep every node's output at every step (``trace``) and the final states (memory: n x T x size).
        record_sample: keep one sample's full trace (``sample_trace``, for the report's raster).
        counters: fill ``counts`` (a few passes over the state per step; off for pure accuracy runs).
        target: a :class:`~neurocompile.target.Target` or target name; used to place the graph when
            ``placement`` is not given (messages and hops need a placement; without one they are 0).
        placement: a precomputed :func:`~neurocompile.mapping.placement.place` result.
        progress: show a progress bar over batches.
        arith: 'auto' (exact floating-point paths where proven), 'int64' or 'reference' (see module doc).
        threads: batches simulated concurrently in threads (NumPy releases the GIL in its loops); results do
            not depend on it.
        backend: 'compiled' (the whole step as one numba function, :mod:`neurocompile.sim.compiled`), 'numpy'
            (the paths above) or 'auto' (compiled when numba is installed, every node type has a compiled kernel
            and ``arith`` is 'auto'). Results do not depend on it.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    p = plan(graph, arith)
    xs, n, steps = _inputs(graph, x)
    if record_sample is not None and not 0 <= record_sample < n:
        raise DatasetError(f"record_sample {record_sample} is out of range: the dataset has {n} samples")
    if placement is None and target is not None:
        if isinstance(target, str):
            from neurocompile.target import load_target

            target = load_target(target)
        placement = place(graph, target)
    from neurocompile.sim.compiled import batch_runner

    runner = batch_runner(p, backend, xs, counters) or _Batch  # the compiled step, or the NumPy engine
    acc = _Acc(p, steps)
    per_step_outputs = [o for o in graph.outputs if o not in p.end_order and not graph.node(o).SEQUENCE_END]
    rec_nodes = list(p.order) if record else list(per_step_outputs)
    sizes = {nm: graph.node(nm).out_size() for nm in p.order}
    trace = {nm: np.zeros((n, steps, sizes[nm]), np.int64) for nm in rec_nodes if nm not in p.end_order}
    end_vals: dict[str, list[Array]] = {}
    sample_trace = None
    if record_sample is not None:
        sample_trace = {nm: np.zeros((steps, sizes[nm]), np.int64) for nm in p.step_order}
    states: dict[str, dict[str, list[Array]]] = {}

    starts = list(range(0, n, batch_size))

    def run_one(i0: int) -> tuple[int, int, dict[str, Array], dict[str, dict[str, Array]], _Acc]:
        i1 = min(n, i0 + batch_size)
        xb = {k: v[i0:i1] for k, v in xs.items()}
        rec = {k: v[i0:i1] for k, v in trace.items()}
        row = record_sample - i0 if record_sample is not None and i0 <= record_sample < i1 else None
        acc_b = _Acc(p, steps)
        batch = runner(p, xb, acc_b, counters, rec, row, sample_trace if row is not None else None, steps)
        final = batch.run()
        if row is not None and sample_trace is not None:
            for k in p.end_order:  # QAccumulate keeps its running sum, as in trace
                sample_trace[k] = np.asarray(final[k][row], np.int64)
        return i0, i1, final, (batch.final_states() if record else {}), acc_b

    bar = None
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TextColumn("samples"),
                       TimeRemainingColumn(), transient=True)
        bar.start()
        task = bar.add_task("sim", total=n)
    done: dict[int, tuple] = {}
    pool = None
    try:
        if threads > 1 and len(starts) > 1:
            from concurrent.futures import ThreadPoolExecutor, as_completed

            from neurocompile.sim.host import one_blas_thread

            pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="neurocompile-sim")
            with one_blas_thread():  # held here, so that the batches' own (nested) limits cannot race
                futures = [pool.submit(run_one, i0) for i0 in starts]
                for fut in as_completed(futures):
                    res = fut.result()
                    done[res[0]] = res
                    if bar is not None:
                        bar.update(task, advance=res[1] - res[0])
        else:
            for i0 in starts:
                done[i0] = run_one(i0)
                if bar is not None:
                    bar.update(task, advance=done[i0][1] - i0)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.stop()
    for i0 in starts:  # merge in sample order
        _, _, final, fstates, acc_b = done[i0]
        acc.add(acc_b)
        for k, v in final.items():
            end_vals.setdefault(k, []).append(np.asarray(v, np.int64))
        for k, sd in fstates.items():
            for sk, sv in sd.items():
                states.setdefault(k, {}).setdefault(sk, []).append(np.asarray(sv, np.int64))

    end = {k: np.concatenate(v, axis=0) for k, v in end_vals.items()}
    outputs: dict[str, Array] = {}
    for o in graph.outputs:
        outputs[o] = end[o] if o in end else trace[o]
    first = outputs[graph.outputs[0]] if graph.outputs else np.zeros((n, 1), np.int64)
    logits = first if first.ndim == 2 else first[:, -1, :]
    predictions = np.argmax(logits, axis=-1).astype(np.int64) if logits.shape[-1] else np.zeros(n, np.int64)
    full_trace = None
    if record:
        full_trace = dict(trace)
        for k in p.end_order:
            full_trace[k] = end[k]
    final_states = None
    if record:
        final_states = {k: {sk: np.concatenate(sv, axis=0) for sk, sv in d.items()} for k, d in states.items()}
    counts = _layer_counts(p, acc, n, steps, placement) if counters else None
    return SimResult(
        outputs=outputs,
        predictions=predictions,
        spikes={k: int(v.sum()) for k, v in acc.spikes_t.items()},
        spikes_per_step=dict(acc.spikes_t),
        saturations=dict(acc.sat),
        counts=counts,
        samples=n,
        steps=steps,
        trace=full_trace,
        final_states=final_states,
        sample_trace=sample_trace,
        record_sample=record_sample,
        placement=placement,
        paths=dict(p.path),
        backend="numpy" if runner is _Batch else "compiled",
        spiking=tuple(p.spiking),
    )


def merge_results(parts: Sequence[SimResult]) -> SimResult:
    """Concatenate runs over consecutive shards of one dataset (in order) into one result.

    Counts, spikes and saturations add; outputs, predictions, traces and final states concatenate along the
    sample axis. ``record_sample`` of a part is taken as an index into that part; the merged index is global.
    """
    if not parts:
        raise ValueError("merge_results needs at least one result")
    first = parts[0]
    steps = first.steps
    for r in parts:
        if r.steps != steps:
            raise ValueError(f"cannot merge runs of {steps} and {r.steps} steps")

    def cat(getter: Callable[[SimResult], dict[str, Array] | None]) -> dict[str, Array] | None:
        ds = [getter(r) for r in parts]
        if any(d is None for d in ds):
            return None
        return {k: np.concatenate([d[k] for d in ds], axis=0) for k in ds[0]}  # type: ignore[index]

    counts = None
    if all(r.counts is not None for r in parts):
        counts = parts[0].counts
        for r in parts[1:]:
            counts = counts + r.counts  # type: ignore[operator]
    offset = 0
    sample_trace = None
    record_sample = None
    for r in parts:
        if r.sample_trace is not None and r.record_sample is not None:
            sample_trace, record_sample = r.sample_trace, offset + r.record_sample
        offset += r.samples
    final_states = None
    if all(r.final_states is not None for r in parts):
        final_states = {k: {sk: np.concatenate([r.final_states[k][sk] for r in parts], axis=0)  # type: ignore[index]
                            for sk in d} for k, d in first.final_states.items()}  # type: ignore[union-attr]
    return dataclasses.replace(
        first,
        outputs=cat(lambda r: r.outputs) or {},
        predictions=np.concatenate([r.predictions for r in parts]),
        spikes={k: sum(r.spikes[k] for r in parts) for k in first.spikes},
        spikes_per_step={k: sum(r.spikes_per_step[k] for r in parts) for k in first.spikes_per_step},
        saturations={k: sum(r.saturations[k] for r in parts) for k in first.saturations},
        counts=counts,
        samples=sum(r.samples for r in parts),
        trace=cat(lambda r: r.trace),
        final_states=final_states,
        sample_trace=sample_trace,
        record_sample=record_sample,
    )
