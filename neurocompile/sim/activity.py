"""Activity counting: updated compartments (Loihi's rule), LUT look-ups, messages in and the per-layer counters of
a run (split from engine.py; the counters are defined in docs/simulator.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.ir.registry import Registry
from neurocompile.mapping.placement import (
    COMPUTE,
    SYNAPSE,
    Placement,
    compartments,
    fanout_nnz,
    synapse_count,
    synops_dense_per_step,
)
from neurocompile.mapping.placement_modes import message_routes, synapse_format
from neurocompile.sim.counters import LayerCounts, RunCounts
from neurocompile.sim.plan import Array, _Plan, is_spiking  # noqa: F401

if TYPE_CHECKING:
    from neurocompile.sim.batch import _Acc


#: node class -> updated compartments of one step ``(node, ins, st, events) -> int`` (Loihi's rule).
ACTIVE: Registry[Callable[..., int]] = Registry("sim-active", family="int")


@ACTIVE.register(hw.QNode)
def _active_units(node: hw.QNode, ins: dict[str, Array], st: dict[str, Any], events: Array | None = None) -> int:
    """One compartment per output unit, updated when a synaptic event arrived (``events``, when the input comes
    through stored synapses), its input is non-zero, or one of its (previous) state variables is non-zero."""
    a = events
    for v in ins.values():
        a = (v != 0) if a is None else (a | (v != 0))
    for var in node.STATE:
        if var.name in st:
            a = (st[var.name] != 0) if a is None else (a | (st[var.name] != 0))
    return int(np.count_nonzero(a)) if a is not None else 0


@ACTIVE.register(hw.QModeBank)
def _active_modes(node: hw.QModeBank, ins: dict[str, Array], st: dict[str, Any], events: Array | None = None) -> int:
    mode = (st["re"] != 0) | (st["im"] != 0) | (ins["in"] != 0)[:, :, None]
    return 2 * int(np.count_nonzero(mode))


@ACTIVE.register(hw.QModeReadout)
def _active_readout(node: hw.QModeReadout, ins: dict[str, Array], st: dict[str, Any],
                    events: Array | None = None) -> int:
    h, m = node.c_re.shape
    state = ins["state"].reshape(-1, h, 2 * m)
    return int(np.count_nonzero(np.any(state != 0, axis=2) | (ins["skip"] != 0)))


@ACTIVE.register(hw.QDense)
def _active_dense(node: hw.QDense, ins: dict[str, Array], st: dict[str, Any], events: Array | None = None) -> int:
    return int(np.count_nonzero(np.any(ins["in"] != 0, axis=1))) * node.out_size()


def _active_count(node: hw.QNode, ins: dict[str, Array], st: dict[str, Any], events: Array | None = None) -> int:
    """Updated compartments of this step (Loihi's rule), by the node's :data:`ACTIVE` entry."""
    return ACTIVE[node](node, ins, st, events)


# ------------------------------------------------------------------------------------------------------------
# Counters
# ------------------------------------------------------------------------------------------------------------

def _lut_ops(node: hw.QNode) -> int:
    """Look-ups of one step of one sample (the node's ``LOOKUPS_PER_STEP``: one per QLUT element, one 1/sqrt per
    QLayerNorm)."""
    k = node.LOOKUPS_PER_STEP
    return node.out_size() if k == "out" else int(k)


def _messages_in(g: Graph, p: _Plan, acc: _Acc, placement: Placement, name: str) -> int:
    """Messages received by the cores of ``name``: per source output index, its non-zero outputs times the
    cores of ``name`` it reaches (messages through a SYNAPSE dense are counted by the dense)."""
    mine = list(placement.node_cores.get(name, ()))
    if not mine or p.role[name] not in (COMPUTE, SYNAPSE):
        return 0
    total = 0
    for s_ in g.preds(name):
        reach = placement._reach.get(s_)
        if reach is None or reach.shape[1] == 0 or p.role[s_] == SYNAPSE:
            continue
        cols = [c for c in mine if c < reach.shape[1]]
        total += int(acc.nz[s_] @ reach[:, cols].sum(axis=1))
    return total


def placed_splits(g: Graph, placement: Placement | None) -> list[Any]:
    """The partial-sum splits the placement made (mapping/partials.py), [] when none or unplaced."""
    from neurocompile.mapping.partials import plan_partials

    if placement is None or not any(":partial:" in n for n in placement.roles):
        return []
    plan = plan_partials(g, int(placement.limits["input_axons"]))
    return [s for s in plan.splits if s.name in placement.roles]


def _partial_routes(placement: Placement, split: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per partial compartment: hops and north-south hops of its one message to the soma."""
    r = message_routes(placement, split.name)
    if r.hops.size != split.parts:
        z = np.zeros(split.parts, np.int64)
        return z, z
    return r.hops, r.hops_ns


def _partial_bound(g: Graph, acc: _Acc, splits: list[Any], placement: Placement, n_steps: int,
                   soma: str) -> tuple[int, int, int]:
    """Upper bound of the partial messages of ``soma`` (and their hops): per partial compartment, the steps at
    which an input of its slice with a non-zero weight was non-zero, at most the steps of the run."""
    msgs = hops = hops_ns = 0
    for s in splits:
        if s.soma != soma:
            continue
        nz = 0
        for src in g.preds(s.dense):
            d = int(g.edge(src, s.dense)["delay"])
            arr = acc.edge_nz.get((src, s.dense)) if d > 0 else None
            nz = nz + (acc.nz[src] if arr is None else arr)  # all of the source's steps bound a delayed edge's
        w = s.weights(np.asarray(g.node(s.dense).weight)) != 0
        per = np.minimum((w.astype(np.int64) @ np.asarray(nz, np.int64)) if np.ndim(nz) else 0, n_steps)
        h, hn = _partial_routes(placement, s)
        msgs, hops, hops_ns = msgs + int(np.sum(per)), hops + int(per @ h), hops_ns + int(per @ hn)
    return msgs, hops, hops_ns


def dense_input(g: Graph, dense: str, trace: dict[str, np.ndarray]) -> np.ndarray:
    """[B, T, n_in] the summed input of ``dense`` at each step from its sources' recorded outputs [B, T, n] (an
    edge of delay d carries its source's output of step t - d, zeros before)."""
    x: Any = 0
    for src in g.preds(dense):
        d = int(g.edge(src, dense)["delay"])
        v = np.asarray(trace[src], np.int64)
        x = x + (np.concatenate([np.zeros_like(v[:, :d]), v[:, :v.shape[1] - d]], axis=1) if d else v)
    return np.asarray(x, np.int64)


def with_exact_partials(counts: RunCounts, g: Graph, placement: Placement,
                        trace: dict[str, np.ndarray]) -> RunCounts:
    """``counts`` with the partial-message counters counted exactly from a recorded run (``trace``: node ->
    [samples, T, size], ``simulate(..., record=True)``): per step, the partial compartments whose exact partial
    sum of the dense's summed input is non-zero (an edge delay of d steps shifts that input by d)."""
    import dataclasses

    from neurocompile.mapping.partials import partial_sums

    splits = placed_splits(g, placement)
    exact: dict[str, list[int]] = {}
    for s in splits:
        per = np.count_nonzero(partial_sums(g, s, dense_input(g, s.dense, trace)), axis=(0, 1))
        h, hn = _partial_routes(placement, s)
        e = exact.setdefault(s.soma, [0, 0, 0])
        e[0], e[1], e[2] = e[0] + int(per.sum()), e[1] + int(per @ h), e[2] + int(per @ hn)
    layers = tuple(dataclasses.replace(lc, partial_messages=exact[lc.name][0], partial_hops=exact[lc.name][1],
                                       partial_hops_ns=exact[lc.name][2]) if lc.name in exact else lc
                   for lc in counts.layers)
    return dataclasses.replace(counts, layers=layers)


def _layer_counts(p: _Plan, acc: _Acc, samples: int, steps: int, placement: Placement | None) -> RunCounts:
    g = p.graph
    layers = []
    splits = placed_splits(g, placement)
    for name in p.order:
        node = g.node(name)
        role = p.role[name]
        n_steps = samples if name in p.end_order else samples * steps
        stage = node.OUTPUT_STAGE  # computed in its producer's compartments
        comp = 0 if stage else compartments(node, role)
        nz = acc.nz[name]
        if g.succs(name) and all(g.node(s_).OUTPUT_STAGE for s_ in g.succs(name)):
            nz = np.zeros_like(nz)  # its messages leave through its output stage, counted there
        events = int(nz.sum()) if role != SYNAPSE else 0
        spiking = is_spiking(node)
        mac = ac = 0
        for port, srcs in p.ports[name]:
            fo = fanout_nnz(node, port)
            if fo is None:
                continue
            for src, d in srcs:
                arr = acc.edge_nz.get((src, name)) if d > 0 else acc.nz[src]
                if arr is None:
                    continue
                ops = int(arr @ fo)
                if is_spiking(g.node(src)):
                    ac += ops
                else:
                    mac += ops
        msgs = local = hops = hops_ns = msgs_in = 0
        core_ids: tuple[int, ...] = ()
        core_counts: tuple[int, ...] = ()
        part = (0, 0, 0)
        if placement is not None:
            part = _partial_bound(g, acc, splits, placement, samples * steps, name) if splits else part
            r = message_routes(placement, name)
            if r.messages.size == nz.size:
                msgs, local, hops, hops_ns = (int(nz @ v) for v in (r.messages, r.local, r.hops, r.hops_ns))
            core_ids = placement.node_cores[name]
            core_counts = placement.node_core_counts[name]
            msgs_in = _messages_in(g, p, acc, placement, name) if role != "host" and not stage else 0
        layers.append(LayerCounts(
            name=name,
            kind=type(node).__name__,
            core_ids=core_ids,
            core_neurons=core_counts,
            role=role,
            synapse_format=synapse_format(node),
            neurons=comp,
            synapses=synapse_count(node),
            spikes=events if spiking else 0,
            graded_messages=0 if spiking else events,
            payload_bits=0 if spiking else events * max(int(node.out_bits), 0),
            synops_dense=synops_dense_per_step(node) * n_steps,
            synops_effective_mac=mac,
            synops_effective_ac=ac,
            neuron_updates=0 if stage else acc.active[name],
            compartment_updates=comp * n_steps,
            state_update_ops=node.STATE_OPS_PER_UNIT * node.out_size() * n_steps,
            lut_ops=_lut_ops(node) * n_steps,
            messages=msgs,
            messages_local=local,
            messages_in=msgs_in,
            hops=hops,
            hops_ns=hops_ns,
            saturations=acc.sat[name],
            partial_messages=part[0],
            partial_hops=part[1],
            partial_hops_ns=part[2],
            steps=n_steps,
            samples=samples,
        ))
    cores = placement.cores_used if placement is not None else 0
    return RunCounts(layers=tuple(layers), samples=samples, steps_per_sample=steps, cores_used=cores)
