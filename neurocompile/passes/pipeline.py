"""The compiler pipeline: a flat, ordered list of passes, each verified on the way in and out.

>>> int_graph, info = compile_graph(float_graph, load_target("loihi2"), calib_x, CompileOptions())

Passes (each a module with ``NAME`` and ``run(graph, ctx) -> graph``):

1. ``fold``        identities removed, BatchNorm and neuron thresholds folded         (float -> float, exact)
2. ``discretize``  S4D -> ModeBank + ModeReadout (zero-order hold)                    (float -> float, exact)
3. ``lower``       GLU -> Affine halves + sigmoid + Mul; LayerNorm kept/frozen/refused (float -> float)
4. ``binarize``    --weights ternary|binary: mixing weights -> {-1, 0, 1} x scale    (float -> float)
5. ``calibrate``   float interpreter on calibration data: per-node ranges            (float -> float + meta)
6. ``quantize``    Q-nodes under the target's precision                              (float -> integer)

Then the insertable nodes asked for (``inserts``: option name -> value, :func:`insert_nodes`) go on their edges
and the design-rule checks (``checks.check_graph``) run on the integer graph; their violations are returned in
``info['violations']`` (errors block export; the caller decides). ``int_graph.meta['passes']`` records the
history: each pass, node counts and what it did (wall times are in ``info['seconds']``).
"""

from __future__ import annotations

import time
from types import ModuleType
from typing import Any

import numpy.typing as npt

from neurocompile.errors import InternalError, IRError, NeurocompileError
from neurocompile.ir.graph import Graph
from neurocompile.passes import binarize, calibrate, checks, discretize, fold, lower, quantize
from neurocompile.passes.common import CompileOptions, PassContext, Precision

__all__ = ["PASSES", "FLOAT_PASSES", "CompileOptions", "compile_graph", "insert_nodes", "insert_options", "parse_inserts",
           "lower_graph", "format_ir"]

PASSES = [fold, discretize, lower, binarize, calibrate, quantize]
#: the passes that keep the graph in float form (what the quantisation report compares against)
FLOAT_PASSES = [fold, discretize, lower, binarize]


def _verify(graph: Graph, after: str | None) -> None:
    """Verify ``graph``; ``after``: the pass that produced it, or None for the pipeline's input graph.

    A graph that fails on the way in is bad input (IRError: a malformed NIR file, a hand-built graph); one that
    fails after a pass is a compiler bug (InternalError naming the pass). Both carry ``violations``."""
    from neurocompile.ir.verify import verify

    violations = verify(graph)
    if not violations:
        return
    listed = "; ".join(str(v) for v in violations[:20])
    more = f" (and {len(violations) - 20} more)" if len(violations) > 20 else ""
    found = f"{len(violations)} violation(s): {listed}{more}"
    err: IRError | InternalError
    if after is None:
        err = IRError(f"IR verification failed on the input graph (before the first pass) ({found})")
    else:
        err = InternalError(f"IR verification failed ({found})", stage=after)
    err.violations = violations
    raise err


def format_ir(graph: Graph) -> str:
    """One line per node: name, op, input edges (port), output size and the node's scalar attributes."""
    lines = [f"graph {graph.name!r}: {len(graph)} nodes, inputs {graph.inputs}, outputs {graph.outputs}"]
    for name, node in graph.items():
        ins = ", ".join(f"{p}:{graph.edge(p, name)['port']}" for p in graph.preds(name))
        attrs = {k: v for k, v in node.attrs().items() if k not in ("size",)}
        shapes = {k: list(v.shape) for k, v in node.params().items()}
        lines.append(f"  {name:<28} {node.op:<13} [{ins}] -> {node.out_size()}  {attrs} {shapes}")
    return "\n".join(lines)


def _run_passes(graph: Graph, ctx: PassContext, passes: list[ModuleType], console: Any = None) -> Graph:
    opts = ctx.options
    history = list(graph.meta.get("passes", []))
    if opts.verify:
        _verify(graph, None)
    for p in passes:
        t0 = time.perf_counter()
        before = len(graph)
        graph = p.run(graph, ctx)
        if opts.verify:
            _verify(graph, p.NAME)
        ctx.info.setdefault("seconds", {})[p.NAME] = round(time.perf_counter() - t0, 4)
        # no wall times in the graph: artifacts must be byte-for-byte reproducible
        history.append({"pass": p.NAME, "nodes_in": before, "nodes_out": len(graph),
                        **_jsonable(ctx.info["passes"].get(p.NAME, {}))})
        graph.meta["passes"] = history
        if opts.print_ir:
            text = f"--- IR after {p.NAME} ---\n{format_ir(graph)}"
            if console is not None:
                console.print(text, markup=False, highlight=False)
            else:
                print(text)
    return graph


def lower_graph(float_graph: Graph, target: Any = None, options: CompileOptions | None = None,
                calib_x: npt.NDArray[Any] | None = None) -> Graph:
    """Run the float passes only (fold, discretize, lower, binarize): the graph the integer one is compared with."""
    options = options or CompileOptions()
    ctx = PassContext(Precision.from_target(target, options), options, calib_x, target)
    return _run_passes(float_graph, ctx, FLOAT_PASSES)


def insert_options() -> dict[str, type[Any]]:
    """Export option name -> the insertable integer node class it inserts (a class's ``INSERT_OPTION`` trait)."""
    from neurocompile.ir import hw

    classes: list[type[Any]] = list(hw.INT_NODES.values())
    return {c.INSERT_OPTION: c for c in classes if c.INSERT_OPTION}


def insert_nodes(graph: Graph, inserts: dict[str, int]) -> Graph:
    """Put an insertable node on every edge its class declares (``INSERT_EDGES``: producer and consumer class
    names), for each option in ``inserts`` (name -> value); the node is built by ``cls.inserted(producer, value)``
    and named ``<producer>.<option>``; the consumer's port, delay and input order are kept. In place; returns it."""
    known = insert_options()
    for opt, value in inserts.items():
        cls = known.get(opt)
        if cls is None:
            raise IRError(f"unknown insert option '{opt}'; known: {', '.join(sorted(known)) or 'none'}")
        for src in list(graph.order()):
            dsts = [d for d in graph.succs(src) if (type(graph.node(src)).__name__,
                                                    type(graph.node(d)).__name__) in cls.INSERT_EDGES]
            if not dsts:
                continue
            name = f"{src}.{opt}"
            graph.add(name, cls.inserted(graph.node(src), value), src)
            for d in dsts:
                attrs = dict(graph.edge(src, d))
                graph.g.remove_edge(src, d)
                graph.g.add_edge(name, d, **attrs)
    return graph


def parse_inserts(items: tuple[str, ...] | list[str]) -> dict[str, int]:
    """``["sigma-delta=0"]`` -> ``{"sigma-delta": 0}``; a bad item or unknown name raises one clear line."""
    known = insert_options()
    out: dict[str, int] = {}
    for item in items:
        name, _, value = item.partition("=")
        if name not in known:
            raise NeurocompileError(f"--insert {item}: unknown node option '{name}'; known: "
                                    f"{', '.join(sorted(known)) or 'none'}")
        try:
            out[name] = int(value) if value else 0
        except ValueError:
            raise NeurocompileError(f"--insert {item}: the value must be an integer (e.g. {name}=0)") from None
        if out[name] < 0:
            raise NeurocompileError(f"--insert {item}: the value must be >= 0")
    return out


def compile_graph(float_graph: Graph, target: Any, calib_x: npt.NDArray[Any] | Any,
                  options: CompileOptions | None = None, console: Any = None,
                  memory_budget: int | None = None, inserts: dict[str, int] | None = None) -> tuple[Graph, dict[str, Any]]:
    """Compile a traced float graph to an integer graph for ``target`` (a loaded Target, or None for defaults).

    Returns ``(int_graph, info)``; ``info`` has ``float_graph`` (the lowered float graph, same node names as the
    integer one), ``violations`` (design-rule :class:`checks.Violation` list), ``warnings`` (precision warnings),
    ``precision`` and per-pass notes. Raises QuantizationError / UnsupportedOpError / IRError with a message
    naming the node when the model cannot be compiled. ``memory_budget`` (bytes) bounds the calibration's chunks
    and kept traces; a sequence that cannot fit it raises QuantizationError naming the sizes.
    """
    options = options or CompileOptions()
    options.validate()
    ctx = PassContext(Precision.from_target(target, options), options, calib_x, target)
    if memory_budget is not None:  # bytes the calibration may hold (calibrate.chunk_plan)
        ctx.info["memory_budget"] = int(memory_budget)
    lowered = _run_passes(float_graph, ctx, FLOAT_PASSES, console)
    calibrated = _run_passes(lowered, ctx, [calibrate], console)
    int_graph = _run_passes(calibrated, ctx, [quantize], console)
    if inserts:
        insert_nodes(int_graph, inserts)
        _verify(int_graph, "insert")
    violations = checks.check_graph(int_graph, ctx.precision)
    int_graph.meta["checks"] = [v.to_dict() for v in violations]
    int_graph.meta["warnings"] = list(ctx.info["warnings"])
    info = {
        "float_graph": lowered,
        "violations": violations,
        "errors": [v for v in violations if v.severity == "error"],
        "warnings": list(ctx.info["warnings"]),
        "precision": ctx.precision,
        "passes": ctx.info["passes"],
        "seconds": ctx.info.get("seconds", {}),
        "calibration": calibrated.meta.get("calibration"),
    }
    return int_graph, info


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    import json

    try:
        json.dumps(d)
        return d
    except TypeError:
        return {k: str(v) for k, v in d.items()}
