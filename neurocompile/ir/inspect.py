"""Human- and machine-readable listing of an IR graph (``neurocompile inspect``, ``--print-ir``).

:func:`describe` returns one JSON-able dict per node, in evaluation order; :func:`render_table` turns the rows into
a ``rich`` table; :func:`format_table` renders it to plain text.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neurocompile.ir.graph import Graph

__all__ = ["describe", "render_table", "format_table"]

_BIT_FIELDS = ("weight_bits", "out_bits", "state_bits", "coef_frac_bits", "trace_frac_bits")


def _scalar(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def describe(graph: Graph) -> list[dict[str, Any]]:
    """One row per node in evaluation order.

    Keys: ``node`` (name), ``op`` (node type), ``inputs`` (["src", or "src:port" when the port is not 'in', with
    "@d" for a delay of d steps]), ``out_size``, ``params`` (number of array elements), ``arrays``
    ({field: shape}), ``attrs`` (scalar fields, bit fields excluded), ``bits`` (integer nodes only: the
    ``*_bits`` fields present), ``stateful``, ``sequence_end``.
    """
    rows: list[dict[str, Any]] = []
    for name in graph.order():
        node = graph.node(name)
        inputs = []
        for src in graph.preds(name):
            e = graph.edge(src, name)
            label = src if e.get("port", "in") == "in" else f"{src}:{e['port']}"
            if e.get("delay", 0):
                label += f"@{e['delay']}"
            inputs.append(label)
        attrs = {k: _scalar(v) for k, v in node.attrs().items() if k not in _BIT_FIELDS}
        row: dict[str, Any] = {
            "node": name,
            "op": node.op,
            "inputs": inputs,
            "out_size": int(node.out_size()),
            "params": int(node.param_count()),
            "arrays": {k: list(v.shape) for k, v in node.params().items()},
            "attrs": attrs,
            "stateful": bool(node.STATEFUL),
            "sequence_end": bool(node.SEQUENCE_END),
        }
        if node.FAMILY == "int":
            row["bits"] = {k: int(getattr(node, k)) for k in _BIT_FIELDS if hasattr(node, k)}
        rows.append(row)
    return rows


def _fmt_attrs(attrs: dict[str, Any]) -> str:
    parts = []
    for k, v in attrs.items():
        if k in ("out_scale",) and isinstance(v, float):
            parts.append(f"{k}={v:.4g}")
        elif isinstance(v, float):
            parts.append(f"{k}={v:g}")
        else:
            parts.append(f"{k}={v}")
    return ", ".join(parts)


def render_table(rows: list[dict[str, Any]], title: str | None = None, console=None):
    """A ``rich.table.Table`` of :func:`describe` rows; printed on ``console`` (a rich Console) when given."""
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for col, kw in (("node", {}), ("op", {}), ("inputs", {}), ("out", {"justify": "right"}),
                    ("params", {"justify": "right"}), ("bits", {}), ("attrs", {})):
        table.add_column(col, **kw)
    for r in rows:
        bits = r.get("bits")
        bits_s = " ".join(f"{k.replace('_bits', '')}={v}" for k, v in bits.items()) if bits else ""
        table.add_row(r["node"], r["op"], ", ".join(r["inputs"]), str(r["out_size"]), str(r["params"]), bits_s,
                      _fmt_attrs(r["attrs"]))
    if console is not None:
        console.print(table)
    return table


def format_table(rows: list[dict[str, Any]], title: str | None = None, width: int = 160) -> str:
    """Plain-text rendering of :func:`render_table` (no colour codes)."""
    from rich.console import Console

    console = Console(width=width, record=True, color_system=None, force_terminal=False)
    with console.capture() as cap:
        console.print(render_table(rows, title))
    return cap.get()
