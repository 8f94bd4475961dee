"""neurocompile.ir: the typed dataflow IR (float nodes, integer nodes, graph) and its tools.

- :mod:`~neurocompile.ir.nodes` / :mod:`~neurocompile.ir.hw`: float and integer node dataclasses.
- :mod:`~neurocompile.ir.graph`: :class:`Graph`.
- :mod:`~neurocompile.ir.verify`: :func:`verify` (violations) and :func:`check` (raises).
- :mod:`~neurocompile.ir.serialize`: :func:`save_graph` / :func:`load_graph` (graph.json + weights.npz).
- :mod:`~neurocompile.ir.interpret`: :func:`interpret`, the NumPy reference of the float nodes.
- :mod:`~neurocompile.ir.inspect`: :func:`describe` / :func:`render_table`.

See docs/ir.md. The functions ``verify`` and ``interpret`` are not re-exported here: their names are the
submodules' (``from neurocompile.ir.interpret import interpret``).
"""

from neurocompile.ir.graph import Graph
from neurocompile.ir.hw import INT_NODES
from neurocompile.ir.inspect import describe, format_table, render_table
from neurocompile.ir.interpret import Result
from neurocompile.ir.nodes import FLOAT_NODES, Node
from neurocompile.ir.serialize import graph_from_dict, graph_to_dict, load_graph, save_graph
from neurocompile.ir.verify import Violation, check

__all__ = [
    "FLOAT_NODES",
    "INT_NODES",
    "Graph",
    "Node",
    "Result",
    "Violation",
    "check",
    "describe",
    "format_table",
    "graph_from_dict",
    "graph_to_dict",
    "load_graph",
    "render_table",
    "save_graph",
]
