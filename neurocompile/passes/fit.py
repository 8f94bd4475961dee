"""Fit first: the resource rules decidable from a model's shapes, before any calibration.

:func:`fit_report` takes an integer graph, or a float graph (traced or lowered), and a target, and answers in
seconds whether the model fits: resources used against available per core and per chip, the lower bound of cores,
and findings with stable rule codes. A float graph is replaced by a *stand-in* integer graph with the same nodes,
edges and non-zero structure (every non-zero weight kept as 1, widths at the target's maxima), which uses at least
the resources of the real one (quantisation only removes weights and narrows states), so a stand-in that fits
means the model's shapes fit, and one that does not is refused before calibrating.

Rules (``rule`` codes are stable; ``usage`` vs ``limit``):

=============== ============================================================================================
fan-in          distinct input axons of one neuron (non-zero weights of its row, per source; a readout channel:
                its own modes' non-zero c and its skip), max over the node's neurons, vs the core's input axons;
                a neuron over it is split into partial-sum compartments (``partial_sums`` of the report,
                :mod:`neurocompile.mapping.partials`) and is an error only when its soma still needs more
                (direct inputs, more partials than axons, or a binary-spike target)
fan-out         output axons one neuron needs at least: per consumer, its non-zero destination rows divided by
                the destination units one core can hold (rounded up), vs the core's output axons
core-capacity   one placement unit (a neuron; an SSM channel's 2M compartments) does not fit an empty core
                (compartments, memory bits, input or output axons)
cores           cores used by the placement vs the target's cores (chips x cores per chip)
=============== ============================================================================================

The lower bound of cores is max over resources of ceil(total / per-core limit): compartments; memory bits
(synapses, plus neuron state where the target's memory is shared); input axons (every source neuron read on chip
needs one on at least one core) and output axons (every on-chip neuron read on chip needs at least one).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from neurocompile.ir import hw
from neurocompile.ir import nodes as fl
from neurocompile.ir.graph import Graph
from neurocompile.ir.registry import Registry
from neurocompile.mapping.resources import (
    COMPUTE,
    RESOURCES,
    SYNAPSE,
    _own_synapse_rows,
    _state_bits,
    _units,
    input_unit_map,
    roles,
    unit_size,
)

__all__ = ["FIX", "fit_report", "lower_bound", "neuron_fan_in", "neuron_fan_out", "stand_in"]

FIX = {
    "fan-in": "reduce the inputs per neuron (fewer SSM modes per channel, narrower or sparser layers); partial "
              "sums split only stored synapses, one level deep, on targets with graded messages",
    "fan-out": "reduce the consumers of the layer or their width",
    "core-capacity": "reduce the SSM modes per channel (d_state) or the per-neuron fan-in",
    "cores": "choose a larger target (kapoho-point, hala-point) or reduce H, d_state or the number of layers",
}


def _i(mask: np.ndarray) -> np.ndarray:
    return (np.asarray(mask) != 0).astype(np.int64)


def stand_in(graph: Graph, target: Any = None) -> Graph:
    """The integer graph a float graph (after the float passes) maps to, for resource counting only: the same
    nodes and edges, every non-zero weight 1, message and state widths at the target's maxima."""
    p = getattr(target, "precision", None)
    msg = int(getattr(p, "graded_message_bits", 24)) if p is not None else 24
    msg = msg if msg > 2 else 16
    wb = int(getattr(p, "weight_bits", 8)) if p is not None else 8
    sb = int(getattr(p, "state_bits", 24)) if p is not None else 24
    q = graph.copy()
    for name in graph.order():
        n = graph.node(name)
        if isinstance(n, hw.QNode):  # already integer
            continue
        q.replace(name, _stand_in_node(name, n, msg, wb, sb))
    return q


#: Float node class -> its integer stand-in (name, node, message bits, weight bits, state bits) -> QNode.
STAND_IN: Registry[Callable[..., hw.QNode]] = Registry("fit-stand-in", family="float", exempt={
    "S4D": "discretize splits it into ModeBank + ModeReadout before resources are counted",
    "GLU": "lower splits it into Activation (sigmoid) + Mul before resources are counted",
})


def _stand_in_node(name: str, n: fl.Node, msg: int, wb: int, sb: int) -> hw.QNode:
    make = STAND_IN.get(n)
    if make is None:
        from neurocompile.errors import UnsupportedOpError

        raise UnsupportedOpError(f"node '{name}' ({n.op}) has no integer form to count resources with; lower the "
                                 f"graph first (fold, discretize, lower)")
    return make(n, msg, wb, sb)


_z = np.zeros


@STAND_IN.register(fl.Input)
def _si_input(n: fl.Input, msg: int, wb: int, sb: int) -> hw.QNode:
    return hw.QInput(size=n.size, tokens=n.tokens, vocab=n.vocab, out_bits=msg)


@STAND_IN.register(fl.Embedding)
def _si_embedding(n: fl.Embedding, msg: int, wb: int, sb: int) -> hw.QNode:
    return hw.QEmbedding(table=_i(n.weight), out_bits=msg)


@STAND_IN.register(fl.Affine)
def _si_affine(n: fl.Affine, msg: int, wb: int, sb: int) -> hw.QNode:
    out = n.weight.shape[0]
    return hw.QDense(weight=_i(n.weight), bias=_z(out, np.int64), shift=_z(out, np.int64), weight_bits=wb,
                     out_bits=msg)


@STAND_IN.register(fl.ModeBank)
def _si_modebank(n: fl.ModeBank, msg: int, wb: int, sb: int) -> hw.QNode:
    H, M = n.dA.shape
    one = np.ones((H, M), np.int64)
    return hw.QModeBank(a_re=one, a_im=one, b_re=_i(n.dB), b_im=_z((H, M), np.int64), b_shift=_z(H, np.int64),
                        weight_bits=wb, out_bits=sb)


@STAND_IN.register(fl.ModeReadout)
def _si_readout(n: fl.ModeReadout, msg: int, wb: int, sb: int) -> hw.QNode:
    H = n.D.shape[0]
    return hw.QModeReadout(c_re=_i(n.C.real), c_im=_i(n.C.imag), d=_i(n.D), shift=_z(H, np.int64),
                           weight_bits=wb, out_bits=msg)


@STAND_IN.register(fl.LIF)
def _si_lif(n: fl.LIF, msg: int, wb: int, sb: int) -> hw.QNode:
    return hw.QLIF(vth=_z(n.vth.shape[0], np.int64), state_bits=sb)


@STAND_IN.register(fl.RefractoryLIF)
def _si_refractory(n: fl.RefractoryLIF, msg: int, wb: int, sb: int) -> hw.QNode:
    H = n.vth.shape[0]
    return hw.QRefractory(vth=_z(H, np.int64), rho=_z(H, np.int64), state_bits=sb)


@STAND_IN.register(fl.Heaviside)
def _si_heaviside(n: fl.Heaviside, msg: int, wb: int, sb: int) -> hw.QNode:
    return hw.QHeaviside(vth=_z(n.vth.shape[0], np.int64))


@STAND_IN.register(fl.Activation)
def _si_activation(n: fl.Activation, msg: int, wb: int, sb: int) -> hw.QNode:
    return hw.QLUT(table=_z(2, np.int64), fn=n.fn, size=n.size, out_bits=msg)


@STAND_IN.register(fl.Mul)
def _si_mul(n: fl.Mul, msg: int, wb: int, sb: int) -> hw.QNode:
    return hw.QMul(size=n.size, out_bits=msg)


@STAND_IN.register(fl.Add)
def _si_add(n: fl.Add, msg: int, wb: int, sb: int) -> hw.QNode:
    return hw.QAdd(size=n.size, out_bits=msg)


@STAND_IN.register(fl.Ternarize)
def _si_ternarize(n: fl.Ternarize, msg: int, wb: int, sb: int) -> hw.QNode:
    return hw.QTernarize(size=n.size)


@STAND_IN.register(fl.MeanPool)
def _si_meanpool(n: fl.MeanPool, msg: int, wb: int, sb: int) -> hw.QNode:
    return hw.QAccumulate(size=n.size)


@STAND_IN.register(fl.Norm)
def _si_norm(n: fl.Norm, msg: int, wb: int, sb: int) -> hw.QNode:
    H = n.weight.shape[0]
    return hw.QLayerNorm(size=H, weight=_i(n.weight), bias=_z(H, np.int64), shift=_z(H, np.int64),
                         rsqrt_table=_z(2, np.int64), weight_bits=wb, out_bits=msg)


# -- per-neuron connectivity -----------------------------------------------------------------------------------

def neuron_fan_in(graph: Graph, role: dict[str, str], name: str) -> np.ndarray:
    """[units] distinct input axons of each placement unit of a COMPUTE node, from the non-zero structure."""
    node = graph.node(name)
    units = _units(node)
    f = np.zeros(units, np.int64)
    for src in graph.preds(name):
        port = graph.edge(src, name)["port"]
        n_in = int(graph.node(src).out_size())
        if role[src] == SYNAPSE:
            w = graph.node(src).weight != 0
            per_row = np.count_nonzero(w, axis=1) * max(1, len(graph.preds(src)))
            umap = input_unit_map(node, port, w.shape[0])
            f += np.bincount(umap, weights=per_row, minlength=units).astype(np.int64)[:units]
        else:
            f += RESOURCES[node].direct_fan_in(node, port, n_in, units)
    return f


def neuron_fan_out(graph: Graph, role: dict[str, str], name: str, compartments: int) -> np.ndarray:
    """[out_size] output axons each output of a COMPUTE node needs at least (one per consumer core it must reach:
    per consumer, the destination units it reaches over the units one core holds, rounded up)."""
    n = int(graph.node(name).out_size())
    need = np.zeros(n, np.int64)
    for s in graph.succs(name):
        if role[s] == COMPUTE:
            need += 1
        elif role[s] == SYNAPSE:
            w = graph.node(s).weight != 0
            for t in graph.succs(s):
                if role[t] != COMPUTE:
                    continue
                dst = graph.node(t)
                per_core = max(1, compartments // unit_size(dst))
                umap = input_unit_map(dst, graph.edge(s, t)["port"], w.shape[0])
                if np.array_equal(umap, np.arange(umap.size)):
                    reached = w.sum(axis=0)  # one row per unit
                else:  # distinct destination units per column: rows of one unit count once
                    units = np.zeros((int(umap.max(initial=-1)) + 1, n), bool)
                    np.logical_or.at(units, umap, w)
                    reached = units.sum(axis=0)
                need += -(-reached // per_core)
    return need


def lower_bound(graph: Graph, target: Any) -> dict[str, int]:
    """Cores needed at least, per resource: ceil(total / per-core limit); ``cores`` is the largest."""
    from neurocompile.mapping.placement import _read_on_chip, min_spread

    role = roles(graph)
    comp = mem = 0
    for name in graph.order():
        node = graph.node(name)
        if role[name] == COMPUTE:
            comp += int(node.out_size())
            own = _own_synapse_rows(node)
            if own is not None:
                mem += int(own.sum()) * int(getattr(node, "weight_bits", 8))
            if target.core.shared_memory:
                mem += _state_bits(node) * int(node.out_size())
        elif role[name] == SYNAPSE:
            mem += int(np.count_nonzero(node.weight)) * int(node.weight_bits)
    # every source neuron read on chip needs an input axon on some core, every such COMPUTE neuron an output axon;
    # one read through dense rows that need k cores of memory needs k of each (``spread``)
    ax_in = ax_out = ax_in_spread = ax_out_spread = 0
    for name in graph.order():
        if role[name] == SYNAPSE:
            continue
        read = _read_on_chip(graph, role, name) > 0
        need = np.maximum(read, min_spread(graph, role, name, int(target.core.synapse_memory_bits)))
        ax_in += int(read.sum())
        ax_in_spread += int(need.sum())
        if role[name] == COMPUTE:
            ax_out += int(read.sum())
            ax_out_spread += int(need.sum())
    core = target.core
    simple = {"compartments": math.ceil(comp / core.compartments),
              "memory_bits": math.ceil(mem / core.synapse_memory_bits),
              "input_axons": math.ceil(ax_in / core.input_axons),
              "output_axons": math.ceil(ax_out / core.output_axons)}
    out: dict[str, Any] = {**simple, "input_axons": math.ceil(ax_in_spread / core.input_axons),
                           "output_axons": math.ceil(ax_out_spread / core.output_axons)}
    out["cores"] = max(1, *out.values())
    out["simple"] = {**simple, "cores": max(1, *simple.values())}
    out["totals"] = {"compartments": comp, "memory_bits": mem, "input_axons": ax_in_spread,
                     "output_axons": ax_out_spread, "input_axons_one_each": ax_in, "output_axons_one_each": ax_out}
    return out


# -- the report ------------------------------------------------------------------------------------------------

def fit_report(graph: Graph, target: Any, placement: Any = None) -> dict[str, Any]:
    """Resources of ``graph`` (integer, or float: counted on its :func:`stand_in`) on ``target``: JSON-able dict
    with ``fits``, ``cores_used``, ``lower_bound``, ``chips``, ``per_core``, ``per_chip`` and ``findings``."""
    from neurocompile.mapping.placement import place

    t0 = time.perf_counter()
    is_int = all(isinstance(graph.node(n), hw.QNode) for n in graph.order())
    g = graph if is_int else stand_in(graph, target)
    role = roles(g)
    core = target.core
    findings: list[dict[str, Any]] = []

    def add(rule: str, node: str, resource: str, usage: int, limit: int, severity: str = "error") -> None:
        findings.append({"rule": rule, "node": node, "resource": resource, "usage": int(usage), "limit": int(limit),
                         "severity": severity, "fix": FIX.get(rule, "")})

    from neurocompile.mapping.partials import placement_graph

    view, plan = placement_graph(g, target)  # the partial-sum compartments made explicit
    fan: dict[str, dict[str, int]] = {}
    for name in g.order():
        if role[name] != COMPUTE:
            continue
        fi = neuron_fan_in(g, role, name)
        fo = neuron_fan_out(g, role, name, int(core.compartments))
        fan[name] = {"fan_in_max": int(fi.max(initial=0)), "fan_out_max": int(fo.max(initial=0))}
        over = [o for o in plan.over if o[0] == name]
        if over:  # over the input axons even after splitting into partial sums
            soma = max(o[2] for o in over)
            add("fan-in", name, "input axons of one neuron" if soma == fan[name]["fan_in_max"] else
                "input axons of one soma after partial sums", soma, core.input_axons)
        if fan[name]["fan_out_max"] > core.output_axons:
            add("fan-out", name, "output axons of one neuron", fan[name]["fan_out_max"], core.output_axons)
    lb = lower_bound(view, target)
    if placement is None and lb["cores"] > target.system.cores_total:
        # refused without placing: even a perfect packing needs more cores than the target has
        add("cores", "", "cores (lower bound: " + max(("compartments", "memory_bits", "input_axons", "output_axons"),
                                                      key=lambda r: lb[r]).replace("_", " ") + ")",
            lb["cores"], target.system.cores_total)
        pl = None
    else:
        pl = placement if placement is not None else place(g, target)
    seen = set()
    for v in pl.violations if pl is not None else ():
        key = (v.rule, v.node, v.resource)
        if key not in seen:
            seen.add(key)
            add(v.rule, v.node, v.resource, v.used, v.limit, v.severity)
    cpc = int(target.system.cores_per_chip)
    used = pl.cores_used if pl is not None else lb["cores"]
    per_core = [] if pl is None else [{"core": c.core, "chip": c.chip, "compartments": c.compartments,
                 "memory_bits": c.synapse_bits + (c.state_bits if core.shared_memory else 0),
                 "input_axons": c.input_axons, "output_axons": c.output_axons} for c in pl.cores]
    chips: dict[int, dict[str, int]] = {}
    for c in per_core:
        d = chips.setdefault(c["chip"], {"chip": c["chip"], "cores": 0, "compartments": 0, "memory_bits": 0})
        d["cores"] += 1
        d["compartments"] += c["compartments"]
        d["memory_bits"] += c["memory_bits"]
    errors = [f for f in findings if f["severity"] == "error"]
    return {
        "target": str(target.name), "fits": not errors, "exact": is_int,
        "placed": pl is not None, "cores_used": used, "cores_available": int(target.system.cores_total),
        "chips_used": math.ceil(used / cpc) if used else 0,
        "chips_available": int(target.system.chips),
        "lower_bound": lb, "cores_over_lower_bound": round(used / lb["cores"], 4),
        "cores_over_simple_bound": round(used / lb["simple"]["cores"], 4),
        "limits": {"compartments": int(core.compartments), "memory_bits": int(core.synapse_memory_bits),
                   "input_axons": int(core.input_axons), "output_axons": int(core.output_axons),
                   "cores_per_chip": cpc},
        "per_core": per_core, "per_chip": [chips[k] for k in sorted(chips)], "neurons": fan,
        "partial_sums": plan.summary(g),
        "mesh_cost": dict(pl.mesh_cost) if pl is not None else {},
        "findings": findings, "seconds": round(time.perf_counter() - t0, 3),
    }
