"""The simulate/report plumbing behind api.py: dataset choice, memory budget, the engine run, placement modes,
cycle timing and per-layer rows (split from api.py to keep each module under 600 lines)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from neurocompile.artifact import Artifact
from neurocompile.datasets import Dataset, check_compatible, load_dataset
from neurocompile.errors import DatasetError, NeurocompileError
from neurocompile.target import Target


def _dataset_for(art: Artifact, dataset: str | None, limit: int | None) -> Dataset:
    model = art.manifest.get("model", {})
    spec = dataset or model.get("task")
    if spec is None:
        raise DatasetError(f"artifact '{art.path}' does not name its dataset; pass --dataset "
                           "(sdigits, listops or a .npz with x [n, T, d] and y [n])")
    inp = art.manifest["input"]
    options = model.get("task_options") if spec == model.get("task") else None
    g = art.int_graph
    vocab = int(getattr(g.node(g.inputs[0]), "vocab", 0) or 0)
    classes = int(g.node(g.outputs[0]).out_size())
    ds = check_compatible(load_dataset(spec, split="test", options=options), int(inp["size"]),
                          bool(inp["tokens"]), f"artifact '{art.path.name}'", vocab=vocab, classes=classes)
    return ds.limit(limit)


def parse_memory(text: str | int | None) -> int | None:
    """'2G', '1536M', '500000k' or a number of bytes -> bytes (None stays None)."""
    if text is None or isinstance(text, int):
        return text
    t = str(text).strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(t[-1:], 1)
    try:
        value = float(t[:-1] if t[-1:] in "KMGT" else t)
    except ValueError:
        raise NeurocompileError(f"--max-memory '{text}' is not a size (e.g. 2G, 1536M)") from None
    if value <= 0:
        raise NeurocompileError(f"--max-memory must be positive, got '{text}'")
    return int(value * mult)


#: memory simulate and report use by default (the float comparison's chunks and the simulator's batch)
DEFAULT_MEMORY = 2 * 2**30


def _float_bytes_per_sample(graph: Any, steps: int) -> int:
    """The float interpreter's memory for one sequence: every node's [T, size] float64 output, twice while it
    works, plus each ModeBank's complex128 states [T, H, M] (bytes)."""
    width = sum(int(graph.node(m).out_size()) for m in graph.order())
    return steps * width * 8 * 3


def float_chunks(graph: Any, n: int, steps: int, budget: int) -> tuple[int, int] | None:
    """(samples, steps) per float-interpreter call within ``budget`` bytes: whole sequences, as many as fit, or
    one sequence in chunks of time when one does not fit (memory then independent of T). None when not even one
    step fits, or when the graph reads the future (bidirectional S4D) and one sequence does not fit."""
    per = _float_bytes_per_sample(graph, steps)
    if per <= budget:
        return int(max(1, min(n, budget // per))), steps
    one_step = _float_bytes_per_sample(graph, 1)
    if one_step > budget or any(getattr(graph.node(m), "bidirectional", False) for m in graph.order()):
        return None
    return 1, int(budget // one_step)


def _float_accuracy(art: Artifact, ds: Dataset, budget: int = DEFAULT_MEMORY, con: Any = None) -> float | None:
    """Float model accuracy, run in chunks of samples (and of time, for long sequences: the interpreter carries
    its state between chunks) that fit ``budget`` bytes; None (with a note naming the sizes) when one sequence
    cannot be run within it."""
    from neurocompile.ir.interpret import interpret, stream

    if art.float_graph is None or ds.y is None:
        return None
    g = art.float_graph
    plan = float_chunks(g, len(ds), int(ds.x.shape[1]), budget)
    if plan is None:
        if con is not None:
            per = _float_bytes_per_sample(g, int(ds.x.shape[1]))
            con.print(f"float comparison skipped: one sequence of {ds.x.shape[1]:,} steps needs about "
                      f"{per / 2**30:.2f} GiB in the float interpreter (a bidirectional layer reads the whole "
                      f"sequence, or one step exceeds it), over the {budget / 2**30:.2f} GiB of --max-memory "
                      f"(raise it, or use --no-float)", highlight=False)
        return None
    chunk, steps = plan
    right = 0
    for s0 in range(0, len(ds), chunk):
        xs = ds.x[s0:s0 + chunk]
        if steps >= xs.shape[1]:
            logits = interpret(g, xs).outputs[g.outputs[0]]
        else:
            for _, res in stream(g, xs, steps):  # chunks of time; the last one holds the logits
                pass
            logits = res.outputs[g.outputs[0]]
        right += int(np.sum(np.argmax(logits, axis=-1) == ds.y[s0:s0 + chunk]))
    return right / len(ds)


def _sim_batch(graph: Any, budget: int) -> int:
    """Samples simulated side by side: SIM_BATCH, fewer when a batch's step buffers (about 64 bytes per node
    output per sample) would take more than a quarter of ``budget``."""
    width = sum(int(graph.node(m).out_size()) for m in graph.order())
    return int(max(1, min(SIM_BATCH, budget // 4 // max(1, 64 * width))))


def _run(art: Artifact, ds: Dataset, backend: str, workers: int, scheduler: str | None,
         progress: bool, record_sample: int | None = None, placement: Any = None,
         sim_backend: str = "auto", budget: int = DEFAULT_MEMORY) -> Any:
    tgt = art.target_spec  # the target it was compiled for, from the artifact itself
    if backend == "lava":
        from neurocompile.backends.lava import simulate_lava

        return simulate_lava(art.int_graph, ds.x, progress=progress, target=tgt)
    if workers > 1 or scheduler:
        from neurocompile.sim.distributed import simulate_distributed

        return simulate_distributed(art.int_graph, ds.x, workers=workers, scheduler_address=scheduler,
                                    target=tgt, progress=progress)
    from neurocompile.sim.engine import simulate as sim
    from neurocompile.sim.host import POOL

    try:
        return sim(art.int_graph, ds.x, target=tgt, progress=progress, record_sample=record_sample,
                   batch_size=_sim_batch(art.int_graph, budget), placement=placement, backend=sim_backend)
    finally:
        POOL.clear()  # one run: the float comparison or report that follows gets the scratch memory back


def _placement(art: Artifact, mapping: str) -> Any:
    """Placement of the artifact's graph with ``mapping`` ('packed', 'layer-per-core' or a placement file)."""
    from neurocompile.mapping.placement_modes import place_as

    return place_as(art.int_graph, art.target_spec, mapping)


def _cycle_timing(art: Artifact, ds: Dataset, placement: Any, target: Target | None = None) -> dict[str, Any]:
    """Cycle-level per-step latencies of the first sample (neurocompile.cost.timing), with the timing constants
    of ``target`` (default: the target the artifact was compiled for)."""
    from neurocompile.cost.timing import cycle_timing
    from neurocompile.sim.engine import simulate as sim

    one = sim(art.int_graph, ds.x[:1], placement=placement, record=True, counters=False)
    assert one.trace is not None  # record=True always keeps the trace
    return cycle_timing(art.int_graph, placement, one.trace, target or art.target_spec)


def pricing_target(art: Artifact, target: str | Path | None) -> tuple[Target, str | None]:
    """The target whose constants price a report of ``art``, and the one line saying so when it is not the one
    the artifact was compiled for (None when it is: no ``target``, or one with the same name and constants)."""
    own = art.target_spec
    if target is None:
        return own, None
    from neurocompile.target import load_target

    tgt = load_target(target)
    if _constants_of(tgt) == _constants_of(own):
        return own, None
    if tgt.name != own.name:
        return tgt, f"re-priced for {tgt.name}; the artifact was compiled for {own.name}"
    return tgt, (f"re-priced for {tgt.name} from {tgt.path}; the artifact was compiled for a different {own.name} "
                 f"(target file sha256 {own.sha256[:12]}, this one {tgt.sha256[:12]})")


def _constants_of(t: Target) -> dict[str, Any]:
    """A target's content without its file hash (the same constants in a re-formatted file price the same)."""
    return {k: v for k, v in t.to_dict().items() if k != "sha256"}


#: samples simulated side by side: per-step Python overhead is amortised over the batch (about 1.5x faster
#: than 64 on the bundled model, see benchmarks/sim_vs_lava.py); results do not depend on it
SIM_BATCH = 256


def _layer_rows(result: Any, n_samples: int, steps: int) -> list[dict[str, Any]]:
    rows = []
    for lc in result.counts.layers:
        if lc.kind not in ("QLIF", "QHeaviside", "QRefractory", "QTernarize"):
            continue
        denom = max(1, lc.neurons * n_samples * steps)
        rows.append({"name": lc.name, "kind": lc.kind, "neurons": lc.neurons, "spikes": int(lc.spikes),
                     "spike_rate": lc.spikes / denom, "spikes_per_sample": lc.spikes / max(1, n_samples)})
    return rows
