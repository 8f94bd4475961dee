"""Self-contained HTML report: inline CSS, matplotlib figures embedded as base64 PNG, no external resources.

Figures: a spike raster of one sample (``raster``: layer name -> [T, N] array, non-zero = event), per-layer
energy bars (stacked by event category), per-layer spike-rate bars, and a per-core utilisation heatmap
(``core_utilisation``: core id -> busy fraction of the step; by default the EnergyReport's own). Tables: totals,
per layer, the comparison conventions, and every target constant used with its source. The estimate
statement is shown at the top. Figures use matplotlib's Agg canvas directly (no pyplot, no global backend).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from neurocompile.cost.energy import DYNAMIC_CATEGORIES, EnergyReport
from neurocompile.report.json_report import atomic_write_text
from neurocompile.report.terminal import coerce_report, fmt_count, fmt_energy, fmt_time
from neurocompile.sim.counters import RunCounts

__all__ = ["render_html", "write_html", "MAX_RASTER_LAYERS"]

MAX_RASTER_LAYERS = 8

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.estimate { background: #fff6d6; border-left: 5px solid #e0a800; padding: 0.7em 1em; margin: 1em 0; }
.exact { background: #eef5ff; border-left: 5px solid #3b7dd8; padding: 0.7em 1em; margin: 1em 0; }
.incomplete { color: #777; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f4f4f4; }
td.l, th.l { text-align: left; }
tr.total td { font-weight: bold; background: #fafafa; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
.src { font-size: 0.8em; color: #444; text-align: left; }
"""

_CATEGORY_COLORS = {
    "synaptic": "#4c72b0",
    "neuron": "#dd8452",
    "state_update": "#55a868",
    "lut": "#c44e52",
    "message": "#8172b3",
    "hop": "#937860",
    "partial": "#da8bc3",
}


def _png(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(b64: str, alt: str, caption: str) -> str:
    return (f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _fig_raster(raster: Mapping[str, Any]) -> str:
    names = list(raster)[:MAX_RASTER_LAYERS]
    fig = Figure(figsize=(10, 1.2 + 1.6 * len(names)))
    axes = fig.subplots(len(names), 1, squeeze=False)[:, 0]
    for ax, name in zip(axes, names):
        a = np.asarray(raster[name])
        if a.ndim == 1:
            a = a[:, None]
        a = a.reshape(a.shape[0], -1)
        ev = (a != 0).astype(np.uint8)
        ax.imshow(ev.T, aspect="auto", interpolation="nearest", cmap="Greys", vmin=0, vmax=1, origin="lower")
        ax.set_ylabel(f"{name}\n({ev.shape[1]} n)", fontsize=8)
        ax.tick_params(labelsize=7)
        rate = ev.mean() if ev.size else 0.0
        ax.set_title(f"{name}: {int(ev.sum())} events, rate {rate:.3f}", fontsize=8, loc="left")
    axes[-1].set_xlabel("time step")
    fig.suptitle("Spike raster, one sample (non-zero messages)", fontsize=10)
    return _png(fig)


def _fig_energy(report: EnergyReport) -> str:
    names = [le.name for le in report.layers]
    fig = Figure(figsize=(10, 1.0 + 0.35 * max(len(names), 2)))
    ax = fig.subplots()
    y = np.arange(len(names))
    left = np.zeros(len(names))
    scale, unit = _energy_scale(max((le.energy_j for le in report.layers), default=0.0))
    for cat in DYNAMIC_CATEGORIES:
        vals = np.array([getattr(le, f"{cat}_j") for le in report.layers]) / scale
        if np.any(vals > 0):
            ax.barh(y, vals, left=left, color=_CATEGORY_COLORS[cat], label=cat.replace("_", " "))
            left += vals
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"dynamic energy per sample ({unit})")
    if any(le.energy_j > 0 for le in report.layers):
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title("Dynamic energy per layer" + (" (ESTIMATE)" if report.is_estimate else ""), fontsize=10)
    return _png(fig)


def _fig_timing(timing: Mapping[str, Any]) -> str:
    """Per-step latency of the cycle-level schedule, with its mean and p95."""
    v = np.asarray(timing["per_step_ns"], np.float64) / 1e3
    fig = Figure(figsize=(10, 2.6))
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 1]})
    ax1.plot(np.arange(v.size), v, lw=0.8, color="#4c72b0")
    ax1.axhline(timing["mean_ns"] / 1e3, color="#dd8452", lw=1, label="mean")
    ax1.axhline(timing["p95_ns"] / 1e3, color="#c44e52", lw=1, ls="--", label="p95")
    ax1.set_xlabel("time step")
    ax1.set_ylabel("latency (us)")
    ax1.legend(fontsize=8, frameon=False)
    ax1.set_title(f"Cycle-level latency per step (critical core {timing.get('critical_core')})", fontsize=10)
    ax2.hist(v, bins=min(30, max(5, v.size // 4)), color="#4c72b0", orientation="horizontal")
    ax2.set_xlabel("steps")
    fig.tight_layout()
    return _png(fig)


def _energy_scale(x: float) -> tuple[float, str]:
    for factor, unit in ((1.0, "J"), (1e-3, "mJ"), (1e-6, "uJ"), (1e-9, "nJ")):
        if x >= factor:
            return factor, unit
    return 1e-12, "pJ"


def _fig_rates(names: list[str], rates: list[float]) -> str:
    fig = Figure(figsize=(10, 1.0 + 0.35 * max(len(names), 2)))
    ax = fig.subplots()
    y = np.arange(len(names))
    ax.barh(y, rates, color="#4c72b0")
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("spikes per neuron per step")
    ax.set_title("Spike rate per layer", fontsize=10)
    return _png(fig)


def _fig_cores(util: Mapping[int, float]) -> str:
    cores = sorted(util, key=lambda c: (c < 0, abs(c)))
    n = len(cores)
    cols = min(16, max(1, math.ceil(math.sqrt(n))))
    rows = math.ceil(n / cols)
    grid = np.full((rows, cols), np.nan)
    for i, c in enumerate(cores):
        grid[i // cols, i % cols] = util[c]
    fig = Figure(figsize=(min(10, 1.5 + 0.6 * cols), 1.2 + 0.5 * rows))
    ax = fig.subplots()
    im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=max(1.0, float(np.nanmax(grid)) if n else 1.0))
    for i, c in enumerate(cores):
        label = f"{c}" if c >= 0 else f"v{-c}"
        ax.text(i % cols, i // cols, label, ha="center", va="center", fontsize=7,
                color="white" if util[c] < 0.5 else "black")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, label="busy fraction of the step")
    ax.set_title("Per-core utilisation (v = virtual core of an unplaced layer)", fontsize=9)
    return _png(fig)


def _table(headers: list[str], rows: list[list[str]], left: int | set[int] = 1,
           total: list[str] | None = None) -> str:
    """An HTML table; ``left``: the first n columns, or a set of column indices, are left-aligned."""
    left_cols = set(range(left)) if isinstance(left, int) else left

    def cell(tag: str, i: int, v: str) -> str:
        cls = ' class="l"' if i in left_cols else ""
        return f"<{tag}{cls}>{html.escape(v)}</{tag}>"

    out = ["<table><tr>" + "".join(cell("th", i, h) for i, h in enumerate(headers)) + "</tr>"]
    for r in rows:
        out.append("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>")
    if total:
        out.append('<tr class="total">' + "".join(cell("td", i, v) for i, v in enumerate(total)) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.3g}x"


def render_html(
    report: EnergyReport | Mapping[str, Any],
    path: str | Path | None = None,
    *,
    counts: RunCounts | None = None,
    raster: Mapping[str, Any] | None = None,
    core_utilisation: Mapping[int, float] | None = None,
    title: str | None = None,
    accuracy: float | None = None,
    float_accuracy: float | None = None,
) -> str:
    """The whole report as one self-contained HTML string; also written atomically to ``path`` when given.

    ``report``: an EnergyReport or its ``to_dict()`` form (a dict's ``counts``, ``accuracy`` and
    ``float_accuracy`` keys are used when the arguments are not given). ``core_utilisation``: core id ->
    busy fraction; when None or empty, the report's own per-core figures are drawn.
    """
    if isinstance(report, Mapping):
        if accuracy is None and isinstance(report.get("accuracy"), (int, float)):
            accuracy = float(report["accuracy"])
        if float_accuracy is None and isinstance(report.get("float_accuracy"), (int, float)):
            float_accuracy = float(report["float_accuracy"])
    report, counts = coerce_report(report, counts)
    text = _render(report, counts, raster, core_utilisation, title, accuracy, float_accuracy)
    if path is not None:
        atomic_write_text(path, text)
    return text


def _render(
    report: EnergyReport,
    counts: RunCounts | None,
    raster: Mapping[str, Any] | None,
    core_utilisation: Mapping[int, float] | None,
    title: str | None,
    accuracy: float | None,
    float_accuracy: float | None,
) -> str:
    title = title or f"neurocompile report: {report.target_display_name}"
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<div class="{"estimate" if report.is_estimate else "exact"}" id="estimate-basis">'
        f"<strong>{esc(report.estimate_statement)}</strong></div>",
    ]
    if not report.complete:
        parts.append(f'<p class="incomplete">Target <code>{esc(report.target)}</code> is marked incomplete: '
                     "see the FIXME notes in its target file.</p>")
    if accuracy is not None or float_accuracy is not None:
        acc = [] if accuracy is None else [f"accuracy {100 * accuracy:.2f}%"]
        if float_accuracy is not None:
            acc.append(f"float model {100 * float_accuracy:.2f}%")
        parts.append(f"<p>{esc(', '.join(acc))}</p>")

    # totals
    lb = report.latency_breakdown_ns
    rows = [
        ["energy per sample", fmt_energy(report.energy_per_sample_j), "dynamic + static of the chips used"],
        ["dynamic (chip)", fmt_energy(report.dynamic_energy_j), "sum over events of count x energy per event"],
        *([["synapse / soma / network", " / ".join(fmt_energy(report.categories_j[k])
                                                   for k in ("synapse", "soma", "network")),
            "look-ups; neuron access, update and spike out; messages and hops"]] if report.categories_j else []),
        *([["host work (not chip)", fmt_energy(report.host["energy_per_sample_j"]),
            f"{', '.join(report.host['layers']) or 'none'}: {fmt_count(report.host['ops_per_sample'])} ops at "
            f"{report.host['mac_pj']} pJ on the host"]] if report.host else []),
        *([["partial-sum messages", fmt_energy(report.dynamic_breakdown_j.get("partial", 0.0)),
            f"{fmt_count(sum(le.partial_messages for le in report.layers))} graded messages from partial-sum "
            f"compartments to their somas (an upper bound unless counted from a trace); step phase "
            f"{lb.get('partial_ns', 0.0):.0f} ns"]] if any(le.partial_messages for le in report.layers) else []),
        ["static (chips used)", fmt_energy(report.static_energy_j),
         f"{report.chips_used} chip(s) for the sample's duration"],
        ["static (whole system)", fmt_energy(report.static_energy_all_chips_j),
         f"{report.chips_in_system} chip(s)"],
        ["latency per step", fmt_time(report.latency_per_step_s),
         (f"cycle mode: p95 {report.timing['p95_ns']:.0f} ns, max {report.timing['max_ns']:.0f} ns, critical core "
          f"{report.timing['critical_core']}" if (report.timing or {}).get("mode") == "cycle" else
          f"max core {lb['compute_ns']:.0f} ns + mesh {lb['noc_ns']:.0f} ns + "
          + (f"partial sums {lb['partial_ns']:.0f} ns + " if lb.get("partial_ns") else "")
          + f"barrier {lb['barrier_ns']:.0f} ns")],
        ["latency per sample", fmt_time(report.latency_per_sample_s), f"{report.steps_per_sample} steps"],
        ["cores / chips used", f"{report.cores_used} / {report.chips_used}", f"samples: {report.samples}"],
    ]
    parts += ["<h2>Totals (per sample)</h2>", _table(["quantity", "value", "note"], rows, left={0, 2})]

    # per layer
    rows = [[le.name, le.kind, "chip" if le.on_chip else "host", fmt_count(le.neurons), fmt_count(le.spikes),
             f"{le.spike_rate:.4f}",
             fmt_count(le.synaptic_ops), fmt_count(le.synaptic_ops_dense), fmt_count(le.state_update_ops),
             fmt_energy(le.energy_j), f"{100 * le.energy_share:.1f}%"] for le in report.layers]
    total = ["total", "", "", fmt_count(sum(le.neurons for le in report.layers)),
             fmt_count(sum(le.spikes for le in report.layers)), "",
             fmt_count(sum(le.synaptic_ops for le in report.layers)),
             fmt_count(sum(le.synaptic_ops_dense for le in report.layers)),
             fmt_count(sum(le.state_update_ops for le in report.layers)),
             fmt_energy(report.dynamic_energy_j), "100%"]
    parts += ["<h2>Per layer (per sample)</h2>",
              _table(["layer", "kind", "runs on", "neurons", "spikes", "spike rate", "synops (eff.)",
                      "synops (dense)", "state ops", "energy", "share"], rows, left=3, total=total)]

    # figures
    parts.append("<h2>Figures</h2>")
    if raster:
        omitted = max(0, len(raster) - MAX_RASTER_LAYERS)
        cap = "Events of one sample: time on x, neuron on y."
        if omitted:
            cap += f" {omitted} more layer(s) not shown."
        parts.append(_img(_fig_raster(raster), "spike raster", cap))
    if report.layers:
        parts.append(_img(_fig_energy(report), "energy per layer",
                          "Dynamic energy per layer and sample, stacked by event category."))
        parts.append(_img(_fig_rates([le.name for le in report.layers], [le.spike_rate for le in report.layers]),
                          "spike rate per layer", "Binary spikes per neuron per step."))
    if (report.timing or {}).get("mode") == "cycle" and report.timing.get("per_step_ns"):
        parts.append(_img(_fig_timing(report.timing), "latency per step",
                          "Event-driven schedule of every step (cores, mesh links, receives), barrier included."))
    util = dict(core_utilisation) if core_utilisation else {c.core: c.utilisation for c in report.cores}
    if util:
        parts.append(_img(_fig_cores(util), "per-core utilisation",
                          "Fraction of the time step each core is busy with synaptic ops and updates."))

    # comparisons
    mix = report.conventions["mixing_only"]
    st = report.conventions["with_state_updates"]
    cp = report.conventional_processor
    rows = [
        ["papers' convention, mixing layers only", fmt_energy(mix["ann_energy_j"]), fmt_energy(mix["snn_energy_j"]),
         _ratio(mix["ratio_ann_over_snn"]), mix["description"]],
        ["papers' convention + SSM state updates", fmt_energy(st["ann_energy_j"]), fmt_energy(st["snn_energy_j"]),
         _ratio(st["ratio_ann_over_snn"]), st["description"]],
    ]
    unit_costs = f"{report.conventions['mac_pj']} pJ per MAC, {report.conventions['ac_pj']} pJ per AC"
    parts += [f"<h2>Comparisons ({esc(unit_costs)})</h2>",
              _table(["count", "ANN", "SNN", "ANN / SNN", "what is counted"], rows, left={0, 4})]
    rows = [
        ["float model on " + cp["name"], fmt_energy(cp["energy_per_sample_j"]), _ratio(cp["ratio_vs_target"]),
         f"{fmt_count(cp['float_macs_per_sample'])} MACs ({cp['macs_source']})"],
        ["  + one SRAM weight fetch per MAC", fmt_energy(cp["energy_with_weight_fetch_per_sample_j"]),
         _ratio(cp["ratio_with_weight_fetch_vs_target"]), f"{cp['sram_pj_per_mac']:.3g} pJ per MAC"],
    ]
    parts.append(_table(["conventional processor", "energy per sample", "conventional / target", "note"], rows,
                        left={0, 3}))

    # activity metrics
    if counts is not None:
        m = counts.metrics()
        rows = [[k, f"{v:.6g}"] for k, v in sorted(m.items())]
        parts += ["<h2>Activity metrics (NeuroBench-style)</h2>", _table(["metric", "value"], rows, left=1)]

    # constants and sources
    rows = [[c["key"], f"{c['value']:g}", c["unit"], c["source"]] for c in report.constants]
    parts += ["<h2>Target constants used, with sources</h2>",
              _table(["constant", "value", "unit", "source"], rows, left={0, 3})]
    parts.append(f'<p class="src">Estimate basis: {esc(report.estimate_basis)}</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_html(
    path: str | Path,
    report: EnergyReport | Mapping[str, Any],
    counts: RunCounts | None = None,
    raster: Mapping[str, Any] | None = None,
    core_utilisation: Mapping[int, float] | None = None,
    title: str | None = None,
    accuracy: float | None = None,
    float_accuracy: float | None = None,
) -> Path:
    """Render the report and write it atomically (temporary file, then rename). Returns the path."""
    render_html(report, path, counts=counts, raster=raster, core_utilisation=core_utilisation, title=title,
                accuracy=accuracy, float_accuracy=float_accuracy)
    return Path(path)
