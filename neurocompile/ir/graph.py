"""The IR graph: named nodes on a networkx DiGraph, edges carrying the destination port.

A node's per-step input on a port is the sum of the outputs of its predecessors on that port (dendritic
accumulation). The graph is evaluated once per time step in :meth:`Graph.order` (a deterministic
topological order); nodes downstream of a sequence-end node (``SEQUENCE_END``) run once, after the last step.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import networkx as nx

from neurocompile.errors import IRError
from neurocompile.ir.nodes import Node


class Graph:
    """A typed dataflow graph of IR nodes.

    Attributes:
        name: model name (used for artifact names).
        inputs: names of the input nodes, in order.
        outputs: names of the output nodes, in order.
        meta: JSON-serialisable metadata (family, source file, pass history, calibration info).
    """

    def __init__(self, name: str = "model") -> None:
        self.name = name
        self.g = nx.DiGraph()
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.meta: dict[str, Any] = {}

    # -- construction -------------------------------------------------------------------------------
    def add(self, name: str, node: Node, inputs: dict[str, list[str] | str] | list[str] | str | None = None) -> str:
        """Add ``node`` as ``name``, wired from ``inputs`` ({port: [src, ...]}, or a list/str for port 'in')."""
        if name in self.g:
            raise IRError(f"node '{name}' already exists in graph '{self.name}'")
        self.g.add_node(name, node=node)
        if inputs is None:
            return name
        if isinstance(inputs, (str, list)):
            inputs = {node.PORTS[0] if node.PORTS else "in": inputs}
        for port, srcs in inputs.items():
            for src in [srcs] if isinstance(srcs, str) else srcs:
                self.connect(src, name, port)
        return name

    def connect(self, src: str, dst: str, port: str = "in", delay: int = 0) -> None:
        """Add the edge ``src -> dst`` on ``port`` (``delay`` in steps)."""
        for n in (src, dst):
            if n not in self.g:
                raise IRError(f"edge {src} -> {dst}: node '{n}' does not exist in graph '{self.name}'")
        if self.g.has_edge(src, dst):
            raise IRError(f"edge {src} -> {dst} already exists (one edge per node pair)")
        order = sum(1 for _ in self.g.in_edges(dst))
        self.g.add_edge(src, dst, port=port, delay=int(delay), order=order)

    def remove(self, name: str) -> None:
        self.g.remove_node(name)
        self.inputs = [n for n in self.inputs if n != name]
        self.outputs = [n for n in self.outputs if n != name]

    def replace(self, name: str, node: Node) -> None:
        """Replace the node object stored under ``name`` (edges kept)."""
        self.g.nodes[name]["node"] = node

    # -- queries ------------------------------------------------------------------------------------
    def node(self, name: str) -> Node:
        try:
            return self.g.nodes[name]["node"]
        except KeyError:
            raise IRError(f"no node '{name}' in graph '{self.name}'") from None

    def __contains__(self, name: str) -> bool:
        return name in self.g

    def __len__(self) -> int:
        return self.g.number_of_nodes()

    def items(self) -> Iterator[tuple[str, Node]]:
        """(name, node) in evaluation order."""
        for n in self.order():
            yield n, self.node(n)

    def preds(self, name: str, port: str | None = None) -> list[str]:
        """Predecessors of ``name`` (on ``port`` if given), in the order their edges were added."""
        edges = sorted(self.g.in_edges(name, data=True), key=lambda e: e[2]["order"])
        return [u for u, _, d in edges if port is None or d["port"] == port]

    def succs(self, name: str) -> list[str]:
        return sorted(self.g.successors(name))

    def edge(self, src: str, dst: str) -> dict[str, Any]:
        return self.g.edges[src, dst]

    def order(self) -> list[str]:
        """Deterministic topological order (ties broken by insertion order)."""
        rank = {n: i for i, n in enumerate(self.g.nodes)}
        try:
            return list(nx.lexicographical_topological_sort(self.g, key=lambda n: rank[n]))
        except nx.NetworkXUnfeasible:
            cycle = nx.find_cycle(self.g)
            raise IRError(f"graph '{self.name}' has a cycle: {cycle}; recurrence must live inside stateful nodes") from None

    def sequence_end_nodes(self) -> set[str]:
        """Nodes evaluated once at the sequence end: sequence-end nodes' strict descendants."""
        out: set[str] = set()
        for n in self.g.nodes:
            if self.node(n).SEQUENCE_END:
                out |= nx.descendants(self.g, n)
        return out

    def copy(self) -> Graph:
        """Deep copy (node objects and arrays copied)."""
        import copy

        return copy.deepcopy(self)

    def __repr__(self) -> str:
        return f"Graph({self.name!r}, {len(self)} nodes, inputs={self.inputs}, outputs={self.outputs})"
