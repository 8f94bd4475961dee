"""Terminal reports (rich tables): per-layer activity and energy, totals, and the estimate statement."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from neurocompile.cost.energy import EnergyReport
from neurocompile.sim.counters import RunCounts

__all__ = [
    "fmt_energy",
    "fmt_time",
    "fmt_count",
    "activity_table",
    "energy_table",
    "summary_table",
    "print_simulation",
    "print_report",
    "render_terminal",
    "render_report_text",
    "coerce_report",
]


def _scaled(x: float, unit: str, steps: list[tuple[float, str]]) -> str:
    if x is None:
        return "-"
    if x == 0:
        return f"0 {unit}"
    for factor, prefix in steps:
        if abs(x) >= factor:
            return f"{x / factor:.3g} {prefix}{unit}"
    factor, prefix = steps[-1]
    return f"{x / factor:.3g} {prefix}{unit}"


_SI = [(1.0, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p")]


def fmt_energy(j: float | None) -> str:
    """Joules with an SI prefix (ASCII 'u' for micro), 3 significant digits."""
    return _scaled(j, "J", _SI)


def fmt_time(s: float | None) -> str:
    """Seconds with an SI prefix, 3 significant digits."""
    return _scaled(s, "s", _SI)


def fmt_count(n: float | None) -> str:
    """A count: integers with thousands separators, fractions to 3 significant digits, large ones in k/M/G."""
    if n is None:
        return "-"
    if abs(n) >= 1e9:
        return f"{n / 1e9:.3g} G"
    if abs(n) >= 1e6:
        return f"{n / 1e6:.3g} M"
    if float(n).is_integer():
        return f"{int(n):,}"
    return f"{n:.3g}"


def _ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.3g}x"


def activity_table(counts: RunCounts, title: str = "Activity per layer (per sample)") -> Table:
    """Per-layer spikes, graded messages, spike rate and synaptic operations, with a totals row."""
    s = max(counts.samples, 1)
    t = Table(title=title, title_justify="left", show_footer=True)
    t.add_column("layer", footer="total")
    t.add_column("kind")
    t.add_column("neurons", justify="right", footer=fmt_count(sum(lc.neurons for lc in counts.layers)))
    t.add_column("spikes", justify="right", footer=fmt_count(counts.total("spikes") / s))
    t.add_column("spike rate", justify="right", footer=f"{counts.metrics()['spike_rate']:.4f}")
    t.add_column("graded msgs", justify="right", footer=fmt_count(counts.total("graded_messages") / s))
    t.add_column("synops (eff.)", justify="right",
                 footer=fmt_count((counts.total("synops_effective_ac") + counts.total("synops_effective_mac")) / s))
    t.add_column("synops (dense)", justify="right", footer=fmt_count(counts.total("synops_dense") / s))
    t.add_column("saturations", justify="right", footer=fmt_count(counts.total("saturations")))
    partial = counts.total("partial_messages") > 0
    if partial:  # only runs with partial-sum compartments (a neuron over the core's input axons)
        t.add_column("partial msgs", justify="right", footer=fmt_count(counts.total("partial_messages") / s))
    for lc in counts.layers:
        t.add_row(
            lc.name,
            lc.kind,
            fmt_count(lc.neurons),
            fmt_count(lc.spikes / s),
            f"{lc.spike_rate:.4f}",
            fmt_count(lc.graded_messages / s),
            fmt_count(lc.synops_effective / s),
            fmt_count(lc.synops_dense / s),
            fmt_count(lc.saturations),
            *([fmt_count(lc.partial_messages / s)] if partial else []),
        )
    return t


def energy_table(report: EnergyReport) -> Table:
    """Per-layer dynamic energy and its share, spikes, spike rate and synaptic operations (per sample)."""
    t = Table(title=f"Energy per layer on {report.target_display_name} (per sample)", title_justify="left",
              show_footer=True)
    t.add_column("layer", footer="total dynamic (chip)")
    t.add_column("kind")
    t.add_column("runs on")
    t.add_column("spikes", justify="right", footer=fmt_count(sum(le.spikes for le in report.layers)))
    t.add_column("spike rate", justify="right")
    t.add_column("synops", justify="right", footer=fmt_count(sum(le.synaptic_ops for le in report.layers)))
    t.add_column("state ops", justify="right", footer=fmt_count(sum(le.state_update_ops for le in report.layers)))
    t.add_column("energy", justify="right", footer=fmt_energy(report.dynamic_energy_j))
    t.add_column("share", justify="right", footer="100%" if report.dynamic_energy_j > 0 else "-")
    for le in report.layers:
        where = ("cores " + ",".join(str(c) for c in le.cores[:4]) + ("..." if len(le.cores) > 4 else "")
                 if le.on_chip and le.cores else ("chip" if le.on_chip else "host"))
        t.add_row(
            le.name,
            le.kind,
            where,
            fmt_count(le.spikes),
            f"{le.spike_rate:.4f}",
            fmt_count(le.synaptic_ops),
            fmt_count(le.state_update_ops),
            fmt_energy(le.energy_j),
            f"{100 * le.energy_share:.1f}%",
        )
    return t


def summary_table(report: EnergyReport) -> Table:
    """Totals: energy (dynamic, static), latency, placement, and the two comparison layers."""
    t = Table(title="Totals", title_justify="left", show_header=False)
    t.add_column("quantity")
    t.add_column("value", justify="right")
    t.add_column("note")
    est = " (ESTIMATE)" if report.is_estimate else ""
    t.add_row("energy per sample" + est, fmt_energy(report.energy_per_sample_j), "dynamic + static of the chips used")
    t.add_row("  dynamic (chip)", fmt_energy(report.dynamic_energy_j), "sum of events x energy per event")
    if report.categories_j:
        cat = report.categories_j
        t.add_row("    synapse / soma / network",
                  " / ".join(fmt_energy(cat[k]) for k in ("synapse", "soma", "network")),
                  "SANA-FE's categories: look-ups; neuron access, update, spike out; messages and hops")
    t.add_row("  static", fmt_energy(report.static_energy_j),
              f"{report.chips_used} chip(s) powered for the sample's duration")
    if report.chips_in_system != report.chips_used:
        t.add_row("  static, whole system", fmt_energy(report.static_energy_all_chips_j),
                  f"all {report.chips_in_system} chips powered")
    if report.host:
        h = report.host
        t.add_row("host work (not chip)", fmt_energy(h["energy_per_sample_j"]),
                  f"{', '.join(h['layers']) or 'none'}: {fmt_count(h['ops_per_sample'])} ops at {h['mac_pj']} pJ; "
                  f"{fmt_count(h['host_to_chip_messages_per_sample'])} host-to-chip messages (chip energy)")
    n_partial = sum(le.partial_messages for le in report.layers)
    if n_partial:
        t.add_row("  partial-sum messages", fmt_energy(report.dynamic_breakdown_j.get("partial", 0.0)),
                  f"{fmt_count(n_partial)} graded messages per sample from partial-sum compartments to their somas "
                  f"(in network; an upper bound unless counted from a trace)")
    lb = report.latency_breakdown_ns
    tm = report.timing or {}
    if tm.get("mode") == "cycle":
        t.add_row("latency per step (cycle mode)", fmt_time(report.latency_per_step_s),
                  f"mean over steps of sample {tm.get('sample', 0)}; p95 {tm['p95_ns']:.0f} ns, max "
                  f"{tm['max_ns']:.0f} ns; critical core {tm['critical_core']}; barrier {tm['barrier_ns']:.0f} ns")
    else:
        t.add_row("latency per step", fmt_time(report.latency_per_step_s),
                  f"max core {lb['compute_ns']:.0f} ns + mesh {lb['noc_ns']:.0f} ns + "
                  + (f"partial sums {lb['partial_ns']:.0f} ns + " if lb.get("partial_ns") else "")
                  + f"barrier {lb['barrier_ns']:.0f} ns (analytical, per-step averages)")
    t.add_row("latency per sample", fmt_time(report.latency_per_sample_s), f"{report.steps_per_sample} steps")
    t.add_row("cores / chips used", f"{report.cores_used} / {report.chips_used}",
              f"placement's cores; {report.tiles_used or '?'} tile(s) with the host port; system has "
              f"{report.chips_in_system} chip(s)")
    mix = report.conventions["mixing_only"]
    st = report.conventions["with_state_updates"]
    t.add_row("paper convention, mixing only", _ratio(mix["ratio_ann_over_snn"]),
              f"ANN {fmt_energy(mix['ann_energy_j'])} vs SNN {fmt_energy(mix['snn_energy_j'])} "
              f"({report.conventions['mac_pj']} pJ/MAC, {report.conventions['ac_pj']} pJ/AC)")
    t.add_row("paper convention + state updates", _ratio(st["ratio_ann_over_snn"]),
              f"ANN {fmt_energy(st['ann_energy_j'])} vs SNN {fmt_energy(st['snn_energy_j'])}")
    cp = report.conventional_processor
    t.add_row("float model, conventional processor", fmt_energy(cp["energy_per_sample_j"]),
              f"{fmt_count(cp['float_macs_per_sample'])} MACs; conventional / target = {_ratio(cp['ratio_vs_target'])}")
    t.add_row("  with weight fetch from SRAM", fmt_energy(cp["energy_with_weight_fetch_per_sample_j"]),
              f"conventional / target = {_ratio(cp['ratio_with_weight_fetch_vs_target'])}")
    return t


def _statement(report: EnergyReport) -> Text:
    style = "bold yellow" if report.is_estimate else "bold"
    return Text(report.estimate_statement, style=style)


def print_simulation(
    counts: RunCounts,
    accuracy: float | None = None,
    float_accuracy: float | None = None,
    console: Console | None = None,
) -> None:
    """Print the result of a simulation: accuracy line and the activity table."""
    console = console or Console()
    parts = [f"samples: {counts.samples}", f"steps per sample: {counts.steps_per_sample}"]
    if accuracy is not None:
        parts.insert(0, f"accuracy: {100 * accuracy:.2f}%")
    if float_accuracy is not None:
        parts.insert(1, f"float accuracy: {100 * float_accuracy:.2f}%")
    console.print("  ".join(parts))
    console.print(activity_table(counts))


def print_report(
    report: EnergyReport,
    counts: RunCounts | None = None,
    console: Console | None = None,
    accuracy: float | None = None,
) -> None:
    """Print the energy report: the estimate statement first, per-layer energy, totals, activity."""
    console = console or Console()
    console.print(_statement(report))
    if accuracy is not None:
        console.print(f"accuracy: {100 * accuracy:.2f}%")
    console.print(energy_table(report))
    console.print(summary_table(report))
    if counts is not None:
        console.print(activity_table(counts))
    if not report.complete:
        console.print(Text(f"Target '{report.target}' is marked incomplete: see the FIXME notes in its file.",
                           style="dim"))


def coerce_report(
    report: EnergyReport | Mapping[str, Any], counts: RunCounts | None = None
) -> tuple[EnergyReport, RunCounts | None]:
    """Accept an EnergyReport or its ``to_dict()`` form (extra keys ignored). A dict's ``counts`` key (a
    ``RunCounts.to_dict()``) supplies the counts when none are given."""
    if isinstance(report, EnergyReport):
        return report, counts
    if not isinstance(report, Mapping):
        raise TypeError(f"expected an EnergyReport or its dict form, got {type(report).__name__}")
    if counts is None and isinstance(report.get("counts"), Mapping):
        counts = RunCounts.from_dict(dict(report["counts"]))
    return EnergyReport.from_dict(dict(report)), counts


def render_terminal(
    report: EnergyReport | Mapping[str, Any],
    counts: RunCounts | None = None,
    console: Console | None = None,
    accuracy: float | None = None,
) -> None:
    """Print the energy report (as :func:`print_report`) from an EnergyReport or its dict form."""
    rep, cnt = coerce_report(report, counts)
    if accuracy is None and isinstance(report, Mapping) and isinstance(report.get("accuracy"), (int, float)):
        accuracy = float(report["accuracy"])
    print_report(rep, cnt, console=console, accuracy=accuracy)


def render_report_text(report: EnergyReport, counts: RunCounts | None = None, width: int = 140) -> str:
    """The terminal report as plain text (no colour codes), e.g. for tests and logs."""
    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system=None, force_terminal=False, legacy_windows=False)
    print_report(report, counts, console=console)
    return buf.getvalue()
