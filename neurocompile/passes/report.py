"""Quantisation report: how far every integer node is from its float counterpart, as a JSON-able dict.

``quant_report(float_graph, int_graph, x, y)`` runs the float interpreter and the integer kernels on the same
data and gives, per integer node (same names as the lowered float graph):

- ``sqnr_db``: 10 log10(sum f^2 / sum (f - q)^2) of the dequantised output q = x_int * out_scale against the
  float node output f (ModeBank states are compared in the float basis, undoing the per-mode basis the quantiser
  chose); ``None`` for spiking outputs, where ``spike_agreement`` (fraction of equal spike values) is given;
- ``saturations`` (values clipped on this data; for a LUT, index clamps where its function is not flat, the
  total being ``lut_clamped``) and ``saturation_rate`` (per output value); the summary's
  ``first_saturating`` is the first saturating node in evaluation order (downstream nodes inherit its errors);
- spiking nodes: spike rates float/int, ``dead`` (neurons that never spike on the data, integer model),
  ``always_on`` (neurons that spike on every step) and ``dead_float`` for comparison;
- what the quantiser measured: ``weight_sqnr_db``, LUT error, ModeBank state width and pole deviation.

Per-layer substitution: each integer node is also run alone on its quantised float inputs (``local_sqnr_db``,
``local_spike_agreement``): the error that node adds by itself. End-to-end SQNR compounds downstream (after a
spiking layer every flipped spike shows up), so ``costliest`` ranks nodes by the error they add alone.

Summary: float and integer accuracy (when ``y`` is given), prediction agreement, ``costliest`` (substitution
ranking), ``worst_sqnr`` (end-to-end), the saturating nodes, warnings and design-rule results.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from neurocompile.ir import nodes as fl
from neurocompile.ir.graph import Graph
from neurocompile.ir.traits import SPIKE_NONE
from neurocompile.passes.qmath import sqnr_db

__all__ = ["quant_report", "render_quant_report", "dequantize"]

_QUANT_KEYS = ("weight_sqnr_db", "lut_sqnr_db", "lut_max_abs_error", "lut_clamped", "state_bits",
               "readout_sqnr_db", "pole_max_deviation", "poles_nudged", "vth_levels_min")


def _needs_lowering(g: Graph, int_graph: Graph | None = None) -> bool:
    """True for a traced (not yet lowered) float graph. A LayerNorm stays in the lowered graph when the integer
    graph holds a QLayerNorm of the same name (layernorm='integer')."""
    from neurocompile.ir import hw

    def kept(name: str, n: Any) -> bool:
        return (isinstance(n, fl.Norm) and n.kind == "layer" and int_graph is not None and name in int_graph
                and isinstance(int_graph.node(name), hw.QLayerNorm))

    return any((isinstance(n, (fl.S4D, fl.GLU, fl.Norm)) and not kept(name, n))
               or (isinstance(n, fl.Activation) and n.fn == "identity") for name, n in g.items())


def dequantize(int_graph: Graph, name: str, values: np.ndarray) -> np.ndarray:
    """Real values of node ``name``'s integer outputs ``values`` [..., n] (ModeBanks: in the float basis)."""
    node = int_graph.node(name)
    rec = int_graph.meta.get("quant", {}).get("nodes", {}).get(name, {})
    if "mode_basis" in rec:
        beta = np.asarray(rec["mode_basis"][0]) + 1j * np.asarray(rec["mode_basis"][1])
        h, m = beta.shape
        z = values.reshape(*values.shape[:-1], h, m, 2).astype(np.float64)
        c = (z[..., 0] + 1j * z[..., 1]) * beta
        return np.stack([c.real, c.imag], axis=-1).reshape(values.shape)
    return values.astype(np.float64) * node.out_scale


def quantize_values(int_graph: Graph, name: str, values: np.ndarray) -> np.ndarray:
    """Inverse of :func:`dequantize`: the integer outputs node ``name`` would send for real ``values``."""
    from neurocompile.passes.common import limit
    from neurocompile.passes.qmath import round_half_away

    node = int_graph.node(name)
    rec = int_graph.meta.get("quant", {}).get("nodes", {}).get(name, {})
    if node.out_bits <= 2:
        return np.asarray(values).astype(np.int64)
    if "mode_basis" in rec:
        beta = np.asarray(rec["mode_basis"][0]) + 1j * np.asarray(rec["mode_basis"][1])
        h, m = beta.shape
        z = values.reshape(*values.shape[:-1], h, m, 2)
        c = (z[..., 0] + 1j * z[..., 1]) / beta
        q = round_half_away(np.stack([c.real, c.imag], axis=-1).reshape(values.shape))
    else:
        q = round_half_away(np.asarray(values, np.float64) / node.out_scale)
    lim = limit(node.out_bits) if node.out_bits > 0 else None
    return np.clip(q, -lim, lim) if lim else q


def local_errors(float_graph: Graph, int_graph: Graph, ftrace: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Per-layer substitution: each integer node run alone on its quantised *float* inputs.

    The error it shows is the one this node adds (upstream errors excluded), so ranking nodes by it names the
    layers that cost the most; ``sqnr_db`` for graded outputs, ``spike_agreement`` for spiking ones.
    """
    from neurocompile.sim.reference import run_node

    out: dict[str, dict[str, float]] = {}
    late = int_graph.sequence_end_nodes()
    for name in int_graph.order():
        q = int_graph.node(name)
        if q.IS_INPUT or name in late or q.SEQUENCE_END or name not in ftrace:
            continue
        ins: dict[str, np.ndarray] = {}
        for p in int_graph.preds(name):
            if p not in ftrace:
                break
            port = int_graph.edge(p, name)["port"]
            v = quantize_values(int_graph, p, ftrace[p])
            ins[port] = ins[port] + v if port in ins else v
        else:
            y = run_node(q, ins)
            ref = ftrace[name]
            if q.out_bits <= 2:
                out[name] = {"spike_agreement": float(np.mean(ref == y))}
            else:
                out[name] = {"sqnr_db": _f(sqnr_db(ref, dequantize(int_graph, name, y)))}
    return out


def _f(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def int_run(graph: Graph, x: np.ndarray) -> Any:
    """``run_int(graph, x, record=True)`` (an :class:`~neurocompile.passes._intrun.IntRun`) computed by the
    simulator's vectorised NumPy engine, which equals the reference runner bit for bit
    (tests/test_sim_reference.py) and runs the dense layers of a batch as exact float64 products; no JIT, so no
    first-run compile. Sequence-end nodes and those after them hold their final value as [B, 1, n]. Inputs the
    engine does not take as they are (several graph inputs fed one array, token ids given as floats) go through
    ``run_int`` itself."""
    from neurocompile.passes._intrun import IntRun, run_int
    from neurocompile.sim.engine import simulate

    x = np.asarray(x)
    first = graph.node(graph.inputs[0]) if len(graph.inputs) == 1 else None
    if (first is None or x.ndim not in (2, 3) or (first.tokens and not np.issubdtype(x.dtype, np.integer))
            or (not first.tokens and x.ndim == 2 and first.size != 1)):
        return run_int(graph, x, record=True)
    r = simulate(graph, x, record=True, counters=False, backend="numpy")
    late = graph.sequence_end_nodes()
    trace: dict[str, np.ndarray] = {}
    for n, v in (r.trace or {}).items():
        if n in late:
            trace[n] = v[:, None]
        elif graph.node(n).SEQUENCE_END:  # its record is the running value: the last step's is the final one
            trace[n] = v[:, -1:]
        else:
            trace[n] = v
    return IntRun(outputs=dict(r.outputs), trace=trace, saturations=dict(r.saturations))


def quant_report(float_graph: Graph, int_graph: Graph, x: Any, y: Any = None) -> dict[str, Any]:
    """Compare ``int_graph`` with ``float_graph`` on inputs ``x`` (labels ``y`` optional); JSON-able dict."""
    from neurocompile.ir.interpret import interpret
    from neurocompile.passes.calibrate import check_calibration_data

    if _needs_lowering(float_graph, int_graph):
        from neurocompile.passes.common import CompileOptions
        from neurocompile.passes.pipeline import lower_graph

        opts = int_graph.meta.get("quant", {}).get("options", {})
        keep = {k: opts[k] for k in ("weights", "ternarize_io", "layernorm") if k in opts}
        float_graph = lower_graph(float_graph, None, CompileOptions(**keep), x)
    x = check_calibration_data(float_graph, x)
    fr = interpret(float_graph, x, record=True)
    ir = int_run(int_graph, x)
    out_f = fr.outputs[float_graph.outputs[0]]
    out_i = ir.outputs[int_graph.outputs[0]]
    pred_f, pred_i = out_f.argmax(-1), out_i.argmax(-1)
    rep: dict[str, Any] = {"samples": int(x.shape[0]), "steps": int(x.shape[1]),
                           "agreement": float(np.mean(pred_f == pred_i)) if out_f.ndim == 2 else None}
    if y is not None:
        yy = np.asarray(y.detach().cpu().numpy() if hasattr(y, "detach") else y).reshape(-1)
        rep["accuracy"] = {"float": float(np.mean(pred_f == yy)), "int": float(np.mean(pred_i == yy))}
        rep["accuracy"]["delta_points"] = 100.0 * (rep["accuracy"]["int"] - rep["accuracy"]["float"])
    from neurocompile.passes.quantize import real_saturations

    sats = real_saturations(int_graph, x, ir)
    quant = int_graph.meta.get("quant", {}).get("nodes", {})
    local = local_errors(float_graph, int_graph, fr.trace)
    rows = []
    for name in int_graph.order():
        q = int_graph.node(name)
        row: dict[str, Any] = {"name": name, "op": q.op, "out_bits": int(q.out_bits), "out_scale": q.out_scale,
                               "saturations": int(sats.get(name, 0))}
        if q.op == "QLUT":
            row["lut_clamped"] = int(ir.saturations.get(name, 0))
        vi = ir.trace.get(name)
        vf = fr.trace.get(name) if name in float_graph else None
        n_values = max(1, vi.size if vi is not None else 1)
        row["saturation_rate"] = row["saturations"] / n_values
        if vf is not None and vi is not None and vf.shape == vi.shape:
            if q.SPIKES != SPIKE_NONE:
                row["sqnr_db"] = None
                row["spike_agreement"] = float(np.mean(vf == vi))
                row["spike_rate_float"] = float(np.mean(vf != 0))
                row["spike_rate_int"] = float(np.mean(vi != 0))
                act_i = (vi != 0).reshape(-1, vi.shape[-1])
                act_f = (vf != 0).reshape(-1, vf.shape[-1])
                row["dead"] = [int(i) for i in np.flatnonzero(~act_i.any(0))]
                row["dead_float"] = [int(i) for i in np.flatnonzero(~act_f.any(0))]
                row["always_on"] = [int(i) for i in np.flatnonzero(act_i.all(0))]
            else:
                row["sqnr_db"] = _f(sqnr_db(vf, dequantize(int_graph, name, vi)))
        for k in _QUANT_KEYS:
            if k in quant.get(name, {}):
                row[k] = quant[name][k]
        loc = local.get(name, {})
        if "sqnr_db" in loc:
            row["local_sqnr_db"] = loc["sqnr_db"]
        if "spike_agreement" in loc:
            row["local_spike_agreement"] = loc["spike_agreement"]
        rows.append(row)
    rep["nodes"] = rows
    graded = [r for r in rows if r.get("sqnr_db") is not None]
    rep["worst_sqnr"] = [r["name"] for r in sorted(graded, key=lambda r: r["sqnr_db"])][:5]
    # cost ranking by substitution: graded nodes by the error they add alone, spiking nodes by the flips they add
    cost = [(r["local_sqnr_db"], r["name"]) for r in rows if r.get("local_sqnr_db") is not None]
    cost += [(10 * math.log10(1.0 / max(1e-12, 1.0 - r["local_spike_agreement"])), r["name"])
             for r in rows if "local_spike_agreement" in r]
    rep["costliest"] = [n for _, n in sorted(cost)][:5]
    first_bad = next((r["name"] for r in rows if r.get("sqnr_db") is not None and r["sqnr_db"] < 30.0), None)
    rep["first_low_sqnr"] = first_bad
    rep["saturating"] = [r["name"] for r in sorted(rows, key=lambda r: -r["saturations"]) if r["saturations"]]
    # saturation propagates downstream: the first saturating node in evaluation order is where it starts
    rep["first_saturating"] = next((r["name"] for r in rows if r["saturations"]), None)
    rep["spike_agreement"] = {r["name"]: r["spike_agreement"] for r in rows if "spike_agreement" in r}
    rep["warnings"] = list(int_graph.meta.get("warnings", []))
    rep["checks"] = list(int_graph.meta.get("checks", []))
    return rep


def render_quant_report(report: dict[str, Any], console: Any = None) -> None:
    """Print ``report`` (from :func:`quant_report`) as rich tables."""
    from rich.console import Console
    from rich.table import Table

    con = console or Console()
    head = f"{report.get('samples')} samples x {report.get('steps')} steps"
    acc = report.get("accuracy")
    if acc:
        head += (f"   float accuracy {100 * acc['float']:.2f} %   integer accuracy {100 * acc['int']:.2f} %   "
                 f"(delta {acc['delta_points']:+.2f} points)")
    if report.get("agreement") is not None:
        head += f"   prediction agreement {100 * report['agreement']:.2f} %"
    t = Table(title=f"quantisation report: {head}")
    for col in ("node", "op", "bits", "SQNR dB", "alone dB", "saturations", "spike agree", "dead / always", "notes"):
        t.add_column(col, justify="left" if col in ("node", "op", "notes") else "right")
    worst = set(report.get("worst_sqnr", [])[:3])
    for r in report.get("nodes", []):
        sq = r.get("sqnr_db")
        sq_txt = "" if sq is None else f"{sq:.1f}"
        if r["name"] in worst and sq is not None:
            sq_txt = f"[bold red]{sq_txt}[/]"
        sat = r["saturations"]
        sat_txt = f"[yellow]{sat:,}[/]" if sat else "0"
        agree = f"{100 * r['spike_agreement']:.2f} %" if "spike_agreement" in r else ""
        alone = f"{r['local_sqnr_db']:.1f}" if r.get("local_sqnr_db") is not None else (
            f"{100 * r['local_spike_agreement']:.2f} %" if "local_spike_agreement" in r else "")
        dead = f"{len(r['dead'])} / {len(r['always_on'])}" if "dead" in r else ""
        notes = []
        for k, label in (("weight_sqnr_db", "w"), ("lut_sqnr_db", "lut"), ("readout_sqnr_db", "readout")):
            if r.get(k) is not None:
                notes.append(f"{label} {r[k]:.1f} dB")
        if "state_bits" in r:
            notes.append(f"state {r['state_bits']} b")
        t.add_row(r["name"], r["op"], str(r["out_bits"]), sq_txt, alone, sat_txt, agree, dead, ", ".join(notes))
    con.print(t)
    if report.get("costliest"):
        con.print(f"layers adding the most error alone (substitution, worst first): {', '.join(report['costliest'])}")
    if report.get("worst_sqnr"):
        con.print(f"lowest end-to-end SQNR: {', '.join(report['worst_sqnr'])}")
    if report.get("saturating"):
        con.print(f"[yellow]saturating nodes[/] (most clipped values first): {', '.join(report['saturating'])}; "
                  f"first in evaluation order: [bold]{report.get('first_saturating')}[/]")
    for w in report.get("warnings", []):
        con.print(f"[yellow]warning[/]: {w}")
    for c in report.get("checks", []):
        con.print(f"[{'red' if c.get('severity') == 'error' else 'yellow'}]{c.get('severity')}[/] "
                  f"{c.get('rule')} at '{c.get('node')}': {c.get('resource')} {c.get('used'):,.0f} > "
                  f"{c.get('limit'):,.0f}")
