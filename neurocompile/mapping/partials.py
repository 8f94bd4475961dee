"""Partial-sum (dendritic accumulation) splitting of neurons whose fan-in exceeds one core's input axons.

A neuron's fan-in is counted per placement unit from the non-zero structure (:func:`neurocompile.passes.fit
.neuron_fan_in`). A unit whose fan-in F exceeds the core's input axons A keeps its own (soma) compartment and
receives the weighted sums of its stored synapses (the SYNAPSE denses feeding it) from *partial compartments*:

- **Slicing rule.** For each SYNAPSE dense feeding the unit, of n_in columns and s sources (each column brings
  s axons), A' = floor(A / s) and the columns are cut into k = ceil(n_in / A') chunks of equal width
  w = ceil(n_in / k) <= A'. A row of the dense over the limit gets one partial compartment per chunk in which it
  has a non-zero weight: that compartment holds the row's weights of the chunk (w x weight_bits memory bits at
  most), needs at most A input axons, one compartment and one output axon, so it fits an empty core on its own;
  the chunks are shared by all rows of the dense, so the partials of one chunk read the same axons and pack
  together like the rows of a dense layer.
- **Soma.** The unit then needs one input axon per partial compartment plus its direct (non-synapse) inputs.
  **Upper limit**: one level of partial sums, so that soma fan-in must be <= A (F <= A' x A for one dense
  without direct inputs: 16,777,216 on loihi2); beyond it, or when the unit's excess comes from direct inputs
  (a LayerNorm reads its whole vector, a relay dense's own rows) the ``fan-in`` error remains.
- **Semantics.** A partial compartment sums its slice exactly (integers) and sends one graded message per step
  to the soma when its partial sum is non-zero; the soma adds them with the bias, then shifts, rounds and
  saturates as the dense does today, so the integer graph and its results do not change (docs/semantics.md).

:func:`placement_graph` rewrites a graph for placement only: per split (soma, dense) pair a dense of the slices
(``<soma>:slices:<dense>``, SYNAPSE) feeds an elementwise compartment node (``<soma>:partial:<dense>``,
COMPUTE, one compartment per partial), whose messages reach the soma through a join of weight-1 synapses
(``<soma>:join:<dense>``, SYNAPSE); the split rows are removed from the original dense. The packer, the mesh and
the routes then price the partial compartments' compartments, memory, axons and messages like any other node.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.mapping.resources import COMPUTE, SYNAPSE, _units, input_unit_map, roles

__all__ = ["PartialSplit", "PartialPlan", "plan_partials", "target_plan", "placement_graph", "partial_sums"]


@dataclass(frozen=True)
class PartialSplit:
    """The partial compartments of one (soma node, SYNAPSE dense) pair: part p sums row ``rows[p]`` of the dense
    over its columns ``chunk[p] * width`` to ``(chunk[p] + 1) * width`` (exclusive)."""

    soma: str
    dense: str
    port: str
    rows: np.ndarray  # [parts] int: the dense row each partial compartment sums
    chunk: np.ndarray  # [parts] int: the column chunk it sums
    width: int  # columns per chunk (w <= A')

    @property
    def parts(self) -> int:
        return int(self.rows.size)

    @property
    def name(self) -> str:
        """The placement name of the partial compartments (one output per part)."""
        return f"{self.soma}:partial:{self.dense}"

    def weights(self, weight: np.ndarray) -> np.ndarray:
        """[parts, n_in]: row rows[p] of ``weight`` with the columns outside chunk[p] zeroed."""
        cols = np.arange(weight.shape[1]) // self.width
        return np.where(cols[None, :] == self.chunk[:, None], weight[self.rows], 0)


@dataclass(frozen=True)
class PartialPlan:
    """Every split of a graph, and the units still over the limit after splitting: (soma, unit, fan-in after
    splitting, limit, why)."""

    splits: tuple[PartialSplit, ...] = ()
    over: tuple[tuple[str, int, int, int, str], ...] = ()
    input_axons: int = 0

    def of(self, soma: str) -> list[PartialSplit]:
        return [s for s in self.splits if s.soma == soma]

    def split_rows(self, soma: str, dense: str) -> set[int]:
        return {int(r) for s in self.splits if s.soma == soma and s.dense == dense for r in s.rows}

    def summary(self, graph: Graph) -> list[dict[str, Any]]:
        """Per soma node: neurons (units) split, partial compartments in all, most on one neuron."""
        out = []
        for soma in dict.fromkeys(s.soma for s in self.splits):
            node = _qnode(graph, soma)
            per_unit = np.zeros(_units(node), np.int64)
            for s in self.of(soma):
                umap = input_unit_map(node, s.port, _dense(graph, s.dense).weight.shape[0])
                np.add.at(per_unit, umap[s.rows], 1)
            out.append({"node": soma, "neurons_split": int(np.count_nonzero(per_unit)),
                        "parts": int(per_unit.sum()), "max_parts": int(per_unit.max(initial=0)),
                        "denses": [s.dense for s in self.of(soma)]})
        return out


def _dense(graph: Graph, name: str) -> hw.QDense:
    """A SYNAPSE node of the graph (the resources registry gives that role only to QDense)."""
    return cast(hw.QDense, graph.node(name))


def _qnode(graph: Graph, name: str) -> hw.QNode:
    return cast(hw.QNode, graph.node(name))


def plan_partials(graph: Graph, input_axons: int, graded: bool = True,
                  role: dict[str, str] | None = None) -> PartialPlan:
    """The partial-sum splits of ``graph`` for cores of ``input_axons`` input axons (module doc: the rule);
    ``graded``: the target sends graded messages (without them a partial sum cannot be sent: nothing is split)."""
    from neurocompile.passes.fit import neuron_fan_in

    role = roles(graph) if role is None else role
    lim = int(input_axons)
    splits: list[PartialSplit] = []
    over: list[tuple[str, int, int, int, str]] = []
    for name in graph.order():
        if role[name] != COMPUTE:
            continue
        fan = neuron_fan_in(graph, role, name)
        bad = fan > lim
        if not bad.any():
            continue
        node = _qnode(graph, name)
        after = fan.copy()
        for d in graph.preds(name):
            if role[d] != SYNAPSE:
                continue
            port = graph.edge(d, name)["port"]
            w = _dense(graph, d).weight != 0
            n_src = max(1, len(graph.preds(d)))
            umap = input_unit_map(node, port, w.shape[0])
            rows = np.flatnonzero(bad[umap])
            if not rows.size or not w.shape[1] or not graded:
                continue
            a1 = max(1, lim // n_src)
            k = -(-w.shape[1] // a1)
            width = -(-w.shape[1] // k)
            pad = np.zeros((rows.size, k * width), bool)
            pad[:, :w.shape[1]] = w[rows]
            hit = pad.reshape(rows.size, k, width).any(axis=2)  # [rows, chunks]: the row has a weight there
            c, r = np.nonzero(hit.T)  # chunk-major: the partials of one chunk read the same axons, so pack together
            splits.append(PartialSplit(name, d, port, rows[r].astype(np.int64), c.astype(np.int64), int(width)))
            # the unit's axons from this dense become one per partial compartment
            np.subtract.at(after, umap[rows], np.count_nonzero(w[rows], axis=1) * n_src)
            np.add.at(after, umap[rows], hit.sum(axis=1))
        for u in np.flatnonzero(bad & (after > lim)):
            why = ("one level of partial sums: the soma receives one axon per part" if after[u] != fan[u] else
                   "partial sums need graded messages; the target sends binary spikes only" if not graded else
                   "its inputs are not stored synapses (direct inputs stay at the soma: no partial sums)")
            over.append((name, int(u), int(after[u]), lim, why))
    return PartialPlan(tuple(splits), tuple(over), lim)


def target_plan(graph: Graph, target: Any) -> PartialPlan:
    """:func:`plan_partials` for ``target``'s input axons and message width."""
    return plan_partials(graph, int(target.core.input_axons), int(target.precision.graded_message_bits) > 2)


def placement_graph(graph: Graph, target: Any) -> tuple[Graph, PartialPlan]:
    """``graph`` with every split neuron's partial compartments made explicit (module doc), for placement only;
    the graph itself when nothing is split."""
    plan = target_plan(graph, target)
    if not plan.splits:
        return graph, plan
    g = graph.copy()
    for s in plan.splits:
        dense = _dense(graph, s.dense)
        srcs = graph.preds(s.dense)
        rest = dense.weight.copy()
        rest[s.rows] = 0
        if g.succs(s.dense) == [s.soma]:
            g.replace(s.dense, dataclasses.replace(_dense(g, s.dense), weight=rest))
        else:  # the dense also feeds other nodes: the soma reads the unsplit rows from a copy
            keep = f"{s.soma}:rest:{s.dense}"
            g.add(keep, dataclasses.replace(dense, weight=rest), {"in": srcs})
            g.g.remove_edge(s.dense, s.soma)
            g.connect(keep, s.soma, s.port)
        out = int(dense.weight.shape[0])
        z = np.zeros(s.parts, np.int64)
        g.add(f"{s.soma}:slices:{s.dense}", hw.QDense(weight=s.weights(dense.weight), bias=z, shift=z,
                                                      weight_bits=dense.weight_bits, out_bits=dense.out_bits),
              {"in": srcs})
        g.add(s.name, hw.QAdd(size=s.parts, out_bits=max(int(dense.out_bits), 2)), f"{s.soma}:slices:{s.dense}")
        join = np.zeros((out, s.parts), np.int64)
        join[s.rows, np.arange(s.parts)] = 1
        zo = np.zeros(out, np.int64)
        g.add(f"{s.soma}:join:{s.dense}", hw.QDense(weight=join, bias=zo, shift=zo, weight_bits=1,
                                                    out_bits=dense.out_bits), s.name)
        g.connect(f"{s.soma}:join:{s.dense}", s.soma, s.port)
    return g, plan


def partial_sums(graph: Graph, split: PartialSplit, inputs: np.ndarray) -> np.ndarray:
    """Exact partial sums [..., parts] of ``split`` for the dense's summed input ``inputs`` [..., n_in] (integers:
    the part's weights times the inputs of its chunk; the bias is added at the soma)."""
    w = split.weights(np.asarray(_dense(graph, split.dense).weight, np.int64))
    return np.asarray(inputs, np.int64) @ w.T
