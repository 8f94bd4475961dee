"""neurocompile.report: terminal tables, deterministic JSON and a self-contained HTML page.

All three read an :class:`~neurocompile.cost.energy.EnergyReport` and/or a
:class:`~neurocompile.sim.counters.RunCounts`; none computes anything the energy model does not.
"""

from neurocompile.report.html import render_html, write_html
from neurocompile.report.json_report import (
    REPORT_SCHEMA,
    SIMULATE_SCHEMA,
    dumps,
    load_json,
    report_json,
    simulate_json,
    write_json,
)
from neurocompile.report.terminal import print_report, print_simulation, render_report_text, render_terminal

__all__ = [
    "REPORT_SCHEMA",
    "SIMULATE_SCHEMA",
    "dumps",
    "load_json",
    "print_report",
    "print_simulation",
    "render_html",
    "render_report_text",
    "render_terminal",
    "report_json",
    "simulate_json",
    "write_html",
    "write_json",
]
