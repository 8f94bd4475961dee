"""Activity counting: updated compartments (Loihi's rule), LUT look-ups, messages in and the per-layer counters of
a run (split from engine.py; the counters are defined in docs/simulator.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.sim.counters import LayerCounts, RunCounts
from neurocompile.sim.placement import (
    COMPUTE,
    SYNAPSE,
    Placement,
    compartments,
    fanout_nnz,
    synapse_count,
    synops_dense_per_step,
)
from neurocompile.sim.placement_modes import message_routes, synapse_format
from neurocompile.sim.plan import Array, _Plan, is_spiking  # noqa: F401

if TYPE_CHECKING:
    from neurocompile.sim.batch import _Acc


def _active_count(node: hw.QNode, ins: dict[str, Array], st: dict[str, Any], events: Array | None = None) -> int:
    """Updated compartments of this step (Loihi's rule): a synaptic event arrived (``events``, when the input
    comes through stored synapses), the input is non-zero, or the (previous) state is non-zero."""
    if isinstance(node, hw.QModeBank):
        mode = (st["re"] != 0) | (st["im"] != 0) | (ins["in"] != 0)[:, :, None]
        return 2 * int(np.count_nonzero(mode))
    if isinstance(node, hw.QModeReadout):
        h, m = node.c_re.shape
        state = ins["state"].reshape(-1, h, 2 * m)
        return int(np.count_nonzero(np.any(state != 0, axis=2) | (ins["skip"] != 0)))
    if isinstance(node, hw.QDense):
        return int(np.count_nonzero(np.any(ins["in"] != 0, axis=1))) * node.out_size()
    a = events
    for v in ins.values():
        a = (v != 0) if a is None else (a | (v != 0))
    for k in ("u", "v", "r", "s", "acc"):
        if k in st:
            a = (st[k] != 0) if a is None else (a | (st[k] != 0))
    return int(np.count_nonzero(a)) if a is not None else 0


# ------------------------------------------------------------------------------------------------------------
# Counters
# ------------------------------------------------------------------------------------------------------------

def _lut_ops(node: hw.QNode) -> int:
    """Look-ups of one step of one sample: one per QLUT element, one 1/sqrt per QLayerNorm."""
    if isinstance(node, hw.QLUT):
        return node.out_size()
    if isinstance(node, hw.QLayerNorm):
        return 1
    return 0


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


def _layer_counts(p: _Plan, acc: _Acc, samples: int, steps: int, placement: Placement | None) -> RunCounts:
    g = p.graph
    layers = []
    for name in p.order:
        node = g.node(name)
        role = p.role[name]
        n_steps = samples if name in p.end_order else samples * steps
        comp = compartments(node, role)
        nz = acc.nz[name]
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
        if placement is not None:
            r = message_routes(placement, name)
            if r.messages.size == nz.size:
                msgs, local, hops, hops_ns = (int(nz @ v) for v in (r.messages, r.local, r.hops, r.hops_ns))
            core_ids = placement.node_cores[name]
            core_counts = placement.node_core_counts[name]
            msgs_in = _messages_in(g, p, acc, placement, name) if role != "host" else 0
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
            neuron_updates=acc.active[name],
            compartment_updates=comp * n_steps,
            state_update_ops=4 * (node.out_size() // 2) * n_steps if isinstance(node, hw.QModeBank) else 0,
            lut_ops=_lut_ops(node) * n_steps,
            messages=msgs,
            messages_local=local,
            messages_in=msgs_in,
            hops=hops,
            hops_ns=hops_ns,
            saturations=acc.sat[name],
            steps=n_steps,
            samples=samples,
        ))
    cores = placement.cores_used if placement is not None else 0
    return RunCounts(layers=tuple(layers), samples=samples, steps_per_sample=steps, cores_used=cores)
