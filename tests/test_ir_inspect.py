"""describe() rows are complete and JSON-able; render_table/format_table show every node."""

from __future__ import annotations

import json

from test_ir_verify import float_graph, int_graph

from neurocompile.ir.inspect import describe, format_table, render_table


def test_describe_float_graph():
    g = float_graph()
    rows = describe(g)
    json.dumps(rows)
    assert [r["node"] for r in rows] == g.order()
    by = {r["node"]: r for r in rows}
    assert by["add"]["inputs"] == ["encoder", "glu"]
    assert by["s4d"]["op"] == "S4D" and by["s4d"]["stateful"] and by["s4d"]["out_size"] == 4
    assert by["s4d"]["arrays"]["C"] == [4, 2]
    assert by["pool"]["sequence_end"]
    assert by["lif"]["attrs"]["tau"] == 0.125
    assert "bits" not in by["lif"]


def test_describe_int_graph_bits_and_ports():
    rows = {r["node"]: r for r in describe(int_graph())}
    json.dumps(list(rows.values()))
    assert rows["dense"]["bits"] == {"weight_bits": 8, "out_bits": 16}
    assert rows["lif"]["bits"]["state_bits"] == 24
    assert rows["bank"]["bits"]["coef_frac_bits"] == 12
    assert rows["read"]["inputs"] == ["bank:state", "dense:skip"]
    assert "out_bits" not in rows["dense"]["attrs"]


def test_render_table():
    rows = describe(int_graph())
    table = render_table(rows, "q")
    assert table.row_count == len(rows)
    from rich.console import Console

    con = Console(record=True, width=200, color_system=None)
    render_table(rows, console=con)
    assert "bank:state" in con.export_text()
    text = format_table(rows)
    for r in rows:
        assert r["node"] in text
    assert "\x1b[" not in text


def test_docs_list_every_node_class():
    from pathlib import Path

    from neurocompile.ir.hw import INT_NODES
    from neurocompile.ir.nodes import FLOAT_NODES

    docs = Path(__file__).resolve().parents[1] / "docs"
    text = (docs / "ir.md").read_text()
    semantics = (docs / "semantics.md").read_text()  # an integer node type may be documented there alone
    missing = [n for n in FLOAT_NODES if f"`{n}`" not in text]
    missing += [n for n in INT_NODES if f"`{n}`" not in text and f"### {n} " not in semantics]
    assert not missing, f"docs/ir.md does not mention {missing}"
