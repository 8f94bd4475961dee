"""``neurocompile check``: does a model file (its shapes) or an artifact (its integer graph) fit a target?

The resource model and rules are :mod:`neurocompile.passes.fit`'s; this module loads the input and prints the
report (docs/mapping.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from neurocompile.artifact import load_artifact
from neurocompile.errors import NeurocompileError

__all__ = ["check", "lowered"]


def check(path: Path | str, target: str | None, as_json: bool, config_path: Path | str | None,
          trust_pickle: bool, con: Console) -> dict[str, Any]:
    """Does MODEL (a model file: its shapes, no calibration) or ARTIFACT (its integer graph) fit TARGET?

    Returns :func:`neurocompile.passes.fit.fit_report`'s dict (``fits``, cores and chips used and available, the
    lower bound of cores, per-core and per-chip use, findings with rule, node, resource, usage, limit, fix)."""
    from neurocompile.passes.fit import fit_report
    from neurocompile.target import load_target

    path = Path(path)
    if path.is_dir():  # an artifact is checked against its own target snapshot unless --target names another
        art = load_artifact(path)
        graph, tgt = art.int_graph, art.target_spec if target is None else load_target(target)
    else:
        if target is None:
            raise NeurocompileError("check of a model file needs --target (see 'neurocompile targets')")
        graph, tgt = lowered(path, config_path, trust_pickle), load_target(target)
    rep = fit_report(graph, tgt)
    rep["model"] = str(path)
    if as_json:
        con.print_json(json.dumps(rep, sort_keys=True))
        return rep
    print_fit(rep, con, path.name)
    return rep


def lowered(model: Path, config_path: Path | str | None, trust_pickle: bool) -> Any:
    """A model file's float graph after the float passes (fold, discretize, lower): shapes only, no data."""
    from neurocompile.passes.common import CompileOptions
    from neurocompile.passes.pipeline import lower_graph

    if model.suffix == ".nir":
        from neurocompile.interop.nir import read_nir

        if not model.is_file():
            raise NeurocompileError(f"model file '{model}' does not exist")
        return lower_graph(read_nir(model), None, CompileOptions(verify=False))
    from neurocompile.frontend import load_model, trace

    config = json.loads(Path(config_path).read_text()) if config_path else None
    # not verified here: the shapes are all this needs, and export verifies every pass
    return lower_graph(trace(load_model(model, trust_pickle=trust_pickle, config=config)), None,
                       CompileOptions(verify=False))


def print_fit(rep: dict[str, Any], con: Console, name: str) -> None:
    lim, lb = rep["limits"], rep["lower_bound"]
    verdict = "[bold green]fits[/]" if rep["fits"] else "[bold red]does not fit[/]"
    used = (f"{rep['cores_used']:,} of {rep['cores_available']:,} cores on {rep['chips_used']:,} of "
            f"{rep['chips_available']:,} chips" if rep["placed"] else
            f"needs at least {lb['cores']:,} cores ({rep['chips_used']:,} chips), has {rep['cores_available']:,} "
            f"({rep['chips_available']:,} chips); not placed")
    simple = lb.get("simple", {}).get("cores", lb["cores"])
    mesh = rep.get("mesh_cost") or {}
    hops = (f"; hop-weighted traffic {mesh['row_major']:,} in packing order, {mesh['refined']:,} arranged"
            if mesh.get("row_major") else "")
    con.print(f"{name} on {rep['target']}: {verdict}; {used}; lower bound {lb['cores']:,} cores "
              f"(x{rep['cores_over_lower_bound']:.2f}; one axon per neuron: {simple:,}){hops}; "
              f"{'integer graph' if rep['exact'] else 'shapes only'}, {rep['seconds']:.2f} s")
    res = ("compartments", "memory_bits", "input_axons", "output_axons")
    t = Table(title="resources: total used / per-core limit", box=box.SIMPLE_HEAD)
    for col in ("resource", "total", "per-core limit", "cores needed", "fullest core"):
        t.add_column(col, justify="left" if col == "resource" else "right")
    for r in res:
        full = max((c[r] for c in rep["per_core"]), default=0)
        t.add_row(r.replace("_", " "), f"{lb['totals'][r]:,}", f"{lim[r]:,}", f"{lb[r]:,}", f"{full:,}")
    con.print(t)
    chips = rep["per_chip"]
    if chips:
        t = Table(title=f"chips used ({len(chips)})", box=box.SIMPLE_HEAD)
        for col in ("chip", "cores", "compartments", "memory bits"):
            t.add_column(col, justify="right")
        for c in chips[:8]:
            t.add_row(str(c["chip"]), f"{c['cores']:,} / {lim['cores_per_chip']:,}", f"{c['compartments']:,}",
                      f"{c['memory_bits']:,}")
        if len(chips) > 8:
            t.add_row("...", f"{sum(c['cores'] for c in chips[8:]):,} more", "", "")
        con.print(t)
    split = rep.get("partial_sums") or []
    if split:
        t = Table(title="neurons split into partial sums (fan-in over the core's input axons)", box=box.SIMPLE_HEAD)
        for col in ("node", "neurons split", "partial compartments", "most on one neuron", "through"):
            t.add_column(col, justify="left" if col in ("node", "through") else "right")
        for d in split:
            t.add_row(d["node"], f"{d['neurons_split']:,}", f"{d['parts']:,}", f"{d['max_parts']:,}",
                      ", ".join(d["denses"]))
        con.print(t)
    if rep["findings"]:
        t = Table(title="findings", box=box.SIMPLE_HEAD)
        for col in ("rule", "severity", "node", "resource", "usage", "limit", "fix"):
            t.add_column(col, justify="right" if col in ("usage", "limit") else "left")
        for f in rep["findings"][:20]:
            t.add_row(f["rule"], f["severity"], f["node"] or "(model)", f["resource"], f"{f['usage']:,}",
                      f"{f['limit']:,}", f["fix"])
        con.print(t)
        if len(rep["findings"]) > 20:
            con.print(f"... and {len(rep['findings']) - 20} more findings (--json lists them all)")
