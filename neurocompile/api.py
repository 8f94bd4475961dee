"""Public functions behind the CLI: one function per command, same arguments.

Each function prints a human summary to ``console`` (a rich Console; quiet when ``None`` is passed as
``console=False``) and returns the same data as a JSON-able dict, so scripts and tests use it directly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table

from neurocompile import __version__
from neurocompile.artifact import Artifact, check_replace, load_artifact, write_artifact
from neurocompile.datasets import check_compatible, load_dataset
from neurocompile.errors import ArtifactError, DatasetError, InternalError, NeurocompileError
from neurocompile.fileio import atomic_write_files, atomic_write_text, check_output_path
from neurocompile.guards import check_outputs, check_workers, predictions_of, read_config
from neurocompile.runs import (  # noqa: F401  (re-exported: scripts and tests use api._run and friends)
    DEFAULT_MEMORY,
    SIM_BATCH,
    _cycle_timing,
    _dataset_for,
    _float_accuracy,
    _float_bytes_per_sample,
    _layer_rows,
    _placement,
    _run,
    _sim_batch,
    parse_memory,
    pricing_target,
)

_DEFAULT_CONSOLE = Console(stderr=False, highlight=False)
if not _DEFAULT_CONSOLE.is_terminal and "COLUMNS" not in os.environ:
    # piped output (make demo, CI logs) is not squeezed to rich's 80-column default
    _DEFAULT_CONSOLE = Console(stderr=False, highlight=False, width=132)


def _console(console: Console | bool | None) -> Console:
    if console is False:
        return Console(file=open(os.devnull, "w"), highlight=False)  # noqa: SIM115 - lives as long as the call
    return console if isinstance(console, Console) else _DEFAULT_CONSOLE


# -- targets -----------------------------------------------------------------------------------------

def targets(as_json: bool = False, console: Console | bool | None = None) -> list[dict[str, Any]]:
    """List the hardware targets with their key limits."""
    from neurocompile.target import list_targets, load_target

    con = _console(console)
    rows: list[dict[str, Any]] = []
    for name in list_targets():
        t = load_target(name)
        rows.append({
            "name": name,
            "description": t.target.description,
            "chips": t.system.chips,
            "cores": t.system.chips * t.system.cores_per_chip,
            "neurons_per_core": t.core.compartments,
            "weight_bits": t.precision.weight_bits,
            "state_bits": t.precision.state_bits,
            "graded_message_bits": t.precision.graded_message_bits,
            "energy_is_estimate": bool(t.target.estimate),
        })
    if as_json:
        con.print_json(json.dumps(rows, sort_keys=True))
        return rows
    table = Table(title="neurocompile targets", box=box.SIMPLE_HEAD, pad_edge=False,
                  caption="bits: weight mantissa, state, graded message (neurocompile/targets/*.toml)")
    cells = [[r["name"], f"{r['chips']:,}", f"{r['cores']:,}", f"{r['neurons_per_core']:,}", str(r["weight_bits"]),
              str(r["state_bits"]), str(r["graded_message_bits"]),
              "estimate" if r["energy_is_estimate"] else "published"] for r in rows]
    heads = ("target", "chips", "cores", "neurons/core", "w bits", "state", "msg", "energy")
    for i, col in enumerate(heads):
        width = max([len(c[i]) for c in cells] + [len(col)])
        table.add_column(col, justify="left" if i in (0, 7) else "right", no_wrap=True, min_width=width)
    for c in cells:
        table.add_row(*c)
    con.print(table)
    return rows


# -- export ------------------------------------------------------------------------------------------

def _model_task(loaded: Any) -> str | None:
    """The dataset a checkpoint was trained on, when it says so."""
    meta = getattr(loaded, "checkpoint", None) or {}
    metrics = meta.get("metrics", {}) if isinstance(meta, dict) else {}
    for key in ("task", "dataset"):
        v = metrics.get(key) if isinstance(metrics, dict) else None
        if isinstance(v, str) and v:
            return v
    return None


def _task_options(loaded: Any, task: str | None) -> dict[str, Any]:
    """Generator settings recorded with the checkpoint for a generated task (e.g. ListOps lengths and seed)."""
    metrics = getattr(loaded, "metrics", None) or {}
    opts = metrics.get(task) if task else None
    return dict(opts) if isinstance(opts, dict) else {}


def _input_spec(graph: Any) -> tuple[int, bool]:
    node = graph.node(graph.inputs[0])
    return int(node.out_size()), bool(getattr(node, "tokens", False))


_ADVICE = {
    "message-bits": "this target carries binary spikes only: choose a target with graded spikes (e.g. loihi2)",
    "accumulator": "lower the weight or message bits, or retrain with smaller weights (or use --weights ternary)",
    "weight-bits": "re-export with the target's weight bits (the model's weights exceed them)",
    "state-bits": "choose a target with wider states",
    "decay": "retrain with shorter time constants (smaller dt) or choose a target with more decay bits",
    "fan-in": "reduce the layer width (H) or the number of SSM modes",
    "core-capacity": "reduce the layer sizes or choose a larger target (kapoho-point, hala-point)",
    "cores": "reduce the model size or choose a larger target (kapoho-point, hala-point)",
}


def _fit_advice(violations: list[Any]) -> str:
    """What to do about design-rule errors, one piece of advice per distinct rule."""
    seen = dict.fromkeys(v.rule for v in violations)
    return "To fix: " + "; ".join(_ADVICE.get(r, f"see the '{r}' rule in docs/passes.md") for r in seen)


#: memory the export's quantisation report may use (float and integer traces of every node, about 4 x 8 bytes per
#: node output per step per sample): at most 128 sequences, fewer on a large model
REPORT_BYTES = 1536 * 2**20


def report_samples(graph: Any, steps: int, available: int, budget: int | None = None) -> int:
    """Sequences the export's quantisation report runs: min(128, REPORT_BYTES (or half of ``budget``) /
    (32 B x T x node outputs))."""
    width = sum(int(graph.node(m).out_size()) for m in graph.order())
    room = REPORT_BYTES if budget is None else budget // 2
    return int(max(1, min(128, available, room // max(1, 32 * steps * width))))


def _fit_first(fgraph: Any, tgt: Any, model: Path, layernorm: str | None) -> None:
    """Refuse, before calibrating, a model whose shapes cannot fit ``tgt`` (one line: rule, node, usage, limit)."""
    from neurocompile.passes.common import CompileOptions
    from neurocompile.passes.fit import fit_report
    from neurocompile.passes.pipeline import lower_graph

    opts = CompileOptions(layernorm="integer" if layernorm in (None, "freeze") else layernorm, verify=False)
    rep = fit_report(lower_graph(fgraph, tgt, opts), tgt)
    errs = [f for f in rep["findings"] if f["severity"] == "error"]
    if errs:
        listed = "; ".join(f"[{f['rule']}] {('node ' + repr(f['node'])) if f['node'] else 'the model'} needs "
                           f"{f['usage']:,} {f['resource']} where the target allows {f['limit']:,}" for f in errs[:4])
        more = f"; and {len(errs) - 4} more" if len(errs) > 4 else ""
        fixes = "; ".join(dict.fromkeys(f["fix"] for f in errs if f["fix"]))
        raise NeurocompileError(
            f"model '{model.name}' does not fit target '{tgt.target.name}' (checked from its shapes, before "
            f"calibration): {listed}{more}. To fix: {fixes}; 'neurocompile check' lists every resource; "
            f"nothing was written")


def placement_record(int_graph: Any, tgt: Any, placement: Any) -> dict[str, Any]:
    """What the artifact stores about the mapping (placement.json): the fit report without its wall time, and
    the placement (cores, their chip and tile, what each holds, each node's cores). Deterministic."""
    from neurocompile.passes.fit import fit_report

    rep = fit_report(int_graph, tgt, placement=placement)
    rep.pop("seconds", None)
    return {"fit": rep, "placement": placement.to_dict()}


def export(model: Path | str, target: str, out: Path | str | None = None, weights: str = "int",
           calibration: str | None = None, calibration_method: str = "percentile",
           config_path: Path | str | None = None, trust_pickle: bool = False, layernorm: str | None = None,
           allow_precision_loss: bool = False, weight_bits: int | None = None, state_bits: int | None = None,
           decay_bits: int | None = None, force: bool = False, print_ir: bool = False,
           calibration_samples: int = 512, max_memory: str | int | None = None,
           console: Console | bool | None = None, nir_exact: bool = False, synaptic_delay: int = 1,
           layout: str | None = None, insert: dict[str, int] | None = None) -> Path:
    """Trace MODEL, lower and quantise it for TARGET, check it, and write an artifact directory.

    ``insert``: insertable node types to put on their edges, option name -> value (``pipeline.parse_inserts``;
    ``{"sigma-delta": 0}``: sigma-delta messaging, docs/semantics.md QSigmaDelta).

    ``nir_exact``: a .nir model with integer weights is imported as it is (interop.nir_exact: weights and
    thresholds kept, ``synaptic_delay`` steps per layer) instead of going through the quantiser."""
    from neurocompile.frontend import trace
    from neurocompile.mapping.placement import place
    from neurocompile.passes.pipeline import CompileOptions, compile_graph
    from neurocompile.passes.report import quant_report
    from neurocompile.target import load_target

    con = _console(console)
    model = Path(model)
    tgt = load_target(target)
    out = Path(out) if out is not None else Path(f"{model.stem}.{tgt.target.name}")
    check_replace(out, force)  # before the long compile: refuse what cannot be written
    check_output_path(out, folder=True)
    config = read_config(config_path)
    if model.suffix == ".nir":  # a plain SNN from another framework, through NIR
        from neurocompile.interop.nir import read_nir

        if not model.is_file():
            raise NeurocompileError(f"model file '{model}' does not exist")
        loaded, fgraph = None, read_nir(model)
    else:
        loaded = _load(model, trust_pickle, config, layout)
        fgraph = trace(loaded)
    # fit first: the shape rules (cores, memory, axons, fan-in and fan-out per neuron) before any calibration
    _fit_first(fgraph, tgt, model, layernorm)
    task = _model_task(loaded)
    calib_spec = calibration or task
    if calib_spec is None:
        raise DatasetError(f"model '{model}' does not say which data it was trained on; pass calibration data "
                           "with --calibration (sdigits, listops or a .npz with x [n, T, d])")
    size, tokens = _input_spec(fgraph)
    task_options = _task_options(loaded, task) if calib_spec == task else {}
    calib = check_compatible(load_dataset(calib_spec, split="train", options=task_options), size, tokens,
                             f"model '{model.name}'")
    calib = calib.limit(min(calibration_samples, len(calib)))
    widths = {"weight_bits": weight_bits, "state_bits": state_bits, "decay_bits": decay_bits}
    overrides: dict[str, Any] = {k: v for k, v in widths.items() if v is not None}
    if layernorm is not None:
        overrides["layernorm"] = layernorm
    options = CompileOptions(weights=weights, calibration=calibration_method, print_ir=print_ir,
                             on_precision="warn" if allow_precision_loss else "error", **overrides)
    budget = parse_memory(max_memory)
    if nir_exact:
        if model.suffix != ".nir":
            raise NeurocompileError(f"--nir-exact needs a .nir model, got '{model.name}'")
        import nir as _nir

        from neurocompile.interop.nir_exact import from_nir_exact
        from neurocompile.passes.checks import check_graph
        from neurocompile.passes.common import Precision

        int_graph = from_nir_exact(_nir.read(str(model)), synaptic_delay=synaptic_delay)
        if insert:
            from neurocompile.passes.pipeline import insert_nodes

            insert_nodes(int_graph, insert)
        info: dict[str, Any] = {"violations": check_graph(int_graph, Precision.from_target(tgt)), "warnings": []}
    elif print_ir:
        int_graph, info = compile_graph(fgraph, tgt, calib.x, options, console=con, memory_budget=budget,
                                        inserts=insert)
    else:
        with con.status(f"compiling {model.name} for {tgt.target.name} ..."):
            int_graph, info = compile_graph(fgraph, tgt, calib.x, options, memory_budget=budget, inserts=insert)
    lowered: Any = info.get("float_graph", fgraph)
    violations: list[Any] = list(info.get("violations", []))  # design-rule and placement violations
    placement = place(int_graph, tgt)
    violations += placement.violations
    blocking = [v for v in violations if v.severity == "error"]
    if blocking:
        listed = "; ".join(str(v) for v in blocking[:4])
        if len(blocking) > 4:
            listed += f"; and {len(blocking) - 4} more at " + ", ".join(v.node for v in blocking[4:])
        raise NeurocompileError(
            f"model '{model.name}' does not fit target '{tgt.target.name}' ({len(blocking)} design-rule "
            f"error(s)): {listed}. {_fit_advice(blocking)}; nothing was written")
    if nir_exact:  # nothing was quantised; the float graph has NIR's instantaneous edges
        qrep = {"exact_nir_import": True, "synaptic_delay": synaptic_delay, "nodes": []}
    else:
        n_rep = report_samples(lowered, int(calib.x.shape[1]), len(calib), budget)
        with con.status("measuring quantisation error ..."):
            qrep = quant_report(lowered, int_graph, calib.x[:n_rep], None if calib.y is None else calib.y[:n_rep])
    out = Path(out) if out is not None else Path(f"{model.stem}.{tgt.target.name}")
    manifest = {
        "model": {"name": fgraph.name, "file": model.name, "family": fgraph.meta.get("family"),
                  "task": task, "task_options": _task_options(loaded, task),
                  "stripped": fgraph.meta.get("stripped", [])},
        "input": {"size": size, "tokens": tokens, "steps": int(calib.x.shape[1])},
        "options": {"weights": weights, "calibration": calib_spec, "calibration_method": calibration_method,
                    "calibration_samples": len(calib), "allow_precision_loss": allow_precision_loss,
                    **overrides, **({"nir_exact": True, "synaptic_delay": synaptic_delay} if nir_exact else {}),
                    **({"insert": dict(insert)} if insert else {})},
    }
    writers = []
    try:
        from neurocompile.backends.lava import netx as _netx

        writers.append(lambda d: _netx.write_netx(int_graph, d / "network.net.h5"))
    except Exception:  # noqa: BLE001 - the netx file is optional: Lava or h5py may be missing
        pass
    extra = {"quant_report.json": qrep, "checks.json": [v.to_dict() for v in violations],
             "placement.json": placement_record(int_graph, tgt, placement)}
    path = write_artifact(out, int_graph, lowered, manifest, extra_json=extra, writers=writers, force=force,
                          target=tgt)
    con.print(f"[bold green]exported[/] {model.name} -> {path}  (target {tgt.target.name}, "
              f"{len(int_graph)} integer nodes)")
    for s in fgraph.meta.get("stripped", []):
        what = f"{s.get('module')} ({s.get('kind')}): {s.get('reason')}" if isinstance(s, dict) else str(s)
        con.print(f"  stripped: {what}", highlight=False)
    for v in violations:
        con.print(f"  [yellow]warning[/]: {v}", markup=True, highlight=False)
    for w in info.get("warnings", []):
        con.print(f"  [yellow]precision warning[/]: {w}", highlight=False)
    return path


# -- check ------------------------------------------------------------------------------------------

def check(path: Path | str, target: str | None = None, as_json: bool = False, config_path: Path | str | None = None,
          trust_pickle: bool = False, console: Console | bool | None = None) -> dict[str, Any]:
    """Does MODEL (a model file: its shapes, no calibration) or ARTIFACT (its integer graph) fit TARGET?

    Returns :func:`neurocompile.passes.fit.fit_report`'s dict (``fits``, cores and chips used and available, the
    lower bound of cores, per-core and per-chip use, findings with rule, node, resource, usage, limit, fix)."""
    from neurocompile import fitcheck

    return fitcheck.check(path, target, as_json, config_path, trust_pickle, _console(console))


# -- convert ----------------------------------------------------------------------------------------

def convert(model: Path | str, to: str, out: Path | str | None = None, dtype: str = "float32",
            spikes: bool = False, dt: float | None = None, config_path: Path | str | None = None,
            trust_pickle: bool = False, force: bool = False, console: Console | bool | None = None) -> Path:
    """Write MODEL's float graph as ONNX (one streaming time step, states as inputs/outputs) or NIR."""
    from neurocompile.frontend import load_model, trace
    from neurocompile.passes.pipeline import lower_graph

    con = _console(console)
    model = Path(model)
    if to not in ("onnx", "nir"):
        raise NeurocompileError(f"unknown format '{to}'; choose onnx or nir")
    out = Path(out) if out is not None else Path(f"{model.stem}.{to}")
    check_output_path(out)
    if out.exists() and not force:
        raise NeurocompileError(f"output '{out}' already exists; pass --force to overwrite it")
    config = read_config(config_path)
    graph = lower_graph(trace(load_model(model, trust_pickle=trust_pickle, config=config)))

    def write(tmp: Path) -> None:
        if to == "onnx":
            from neurocompile.interop.onnx import export_onnx

            export_onnx(graph, tmp, spikes=spikes, dtype=dtype)
        else:
            from neurocompile.interop.nir import DEFAULT_DT, write_nir

            write_nir(graph, tmp, dt=DEFAULT_DT if dt is None else dt)

    atomic_write_files({out: write})
    con.print(f"[bold green]converted[/] {model.name} -> {out} ({to})")
    return out


# -- simulate ----------------------------------------------------------------------------------------



def simulate(artifact: Path | str, dataset: str | None = None, limit: int | None = None,
             json_path: Path | str | None = None, backend: str = "sim", workers: int = 1,
             scheduler: str | None = None, compare_float: bool = True, predictions: bool = False,
             console: Console | bool | None = None, timing: str | None = None,
             sim_backend: str = "auto", max_memory: str | int | None = None) -> dict[str, Any]:
    """Run the integer model of ARTIFACT on a dataset: accuracy (integer and float) and per-layer spikes.

    Returns (and writes to ``json_path``) the ``neurocompile.simulate/1`` document of docs/report-schema.md;
    ``predictions``: add per-sample predictions and labels; ``timing='cycle'``: add the event-driven per-step
    latency distribution of the first sample; ``sim_backend`` ('auto', 'compiled', 'numpy') picks the
    simulator's engine (results do not depend on it); ``max_memory``: budget for the simulator's batch
    and the chunked float comparison.
    """
    from neurocompile.report.json_report import dumps as report_dumps
    from neurocompile.report.json_report import simulate_json

    con = _console(console)
    check_workers(workers)
    check_outputs(json_path)
    art = load_artifact(artifact)
    ds = _dataset_for(art, dataset, limit)
    budget = parse_memory(max_memory) or DEFAULT_MEMORY
    result = _run(art, ds, backend, workers, scheduler, progress=True, sim_backend=sim_backend, budget=budget)
    steps = int(ds.x.shape[1])
    accuracy = float_accuracy = None
    if ds.y is not None:
        accuracy = float(np.mean(result.predictions == ds.y))
        if compare_float:
            float_accuracy = _float_accuracy(art, ds, budget, con)
    meta: dict[str, Any] = {"artifact": str(art.path), "target": art.target, "backend": backend,
                            "dataset": ds.name,
                            "saturations": {k: int(v) for k, v in sorted(result.saturations.items()) if v}}
    if predictions:
        meta.update(predictions_of(result, ds))
    out = simulate_json(result.counts, accuracy=accuracy, float_accuracy=float_accuracy, meta=meta)
    out.setdefault("float_accuracy", None)
    rows = _layer_rows(result, len(ds), steps)
    if timing == "cycle":  # event-driven schedule of every step of the first sample on the default placement
        out["timing"] = _cycle_timing(art, ds, _placement(art, "packed"))
    table = Table(title=f"{art.path.name} on {ds.name} ({len(ds)} samples x {steps} steps, backend {backend})")
    for col in ("layer", "neurons", "spikes", "spikes/sample", "spike rate"):
        table.add_column(col, justify="left" if col == "layer" else "right")
    for r in rows:
        table.add_row(r["name"], str(r["neurons"]), f"{r['spikes']:,}", f"{r['spikes_per_sample']:.1f}",
                      f"{100 * r['spike_rate']:.2f} %")
    con.print(table)
    if out.get("timing"):
        tm = out["timing"]
        con.print(f"latency per step (cycle mode, sample 0): mean {tm['mean_ns']:.0f} ns, p95 {tm['p95_ns']:.0f} ns, "
                  f"max {tm['max_ns']:.0f} ns; critical core {tm['critical_core']}")
    if accuracy is not None:
        line = f"integer accuracy: [bold]{100 * accuracy:.2f} %[/]"
        if float_accuracy is not None:
            delta = 100 * (accuracy - float_accuracy)
            line += f"   float accuracy: {100 * float_accuracy:.2f} %   (delta {delta:+.2f} points)"
        con.print(line)
    if json_path is not None:
        atomic_write_text(Path(json_path), report_dumps(out))
    return out


# -- report ------------------------------------------------------------------------------------------

def report(artifact: Path | str, dataset: str | None = None, limit: int | None = None,
           json_path: Path | str | None = None, html_path: Path | str | None = None, workers: int = 1,
           predictions: bool = False, console: Console | bool | None = None, timing: str = "analytical",
           mapping: str = "packed", target: str | Path | None = None) -> dict[str, Any]:
    """Energy, latency and activity of ARTIFACT on a dataset, as terminal tables, JSON and HTML.

    Returns (and writes to ``json_path``) the ``neurocompile.report/1`` document of docs/report-schema.md;
    the JSON and HTML files are written as a set (both or neither). ``predictions``: add per-sample
    predictions and labels to the JSON. ``timing``: 'analytical' or 'cycle'; ``mapping``: 'packed',
    'layer-per-core' or a placement file. ``target``: price the same activity (and placement) with another
    target's constants; the report says so on one line (``repriced`` in the JSON, the HTML title, the terminal).
    """
    from neurocompile.cost.energy import estimate
    from neurocompile.report import render_html, render_terminal
    from neurocompile.report.json_report import dumps as report_dumps
    from neurocompile.report.json_report import report_json

    con = _console(console)
    check_workers(workers)
    check_outputs(json_path, html_path)
    art = load_artifact(artifact)
    tgt, repriced = pricing_target(art, target)  # before the run: a bad --target fails at once
    ds = _dataset_for(art, dataset, limit)
    if timing not in ("analytical", "cycle"):
        raise NeurocompileError(f"--timing must be 'analytical' or 'cycle', got {timing!r}")
    from neurocompile.mapping.placement_modes import tiles_used

    placement = _placement(art, mapping)
    result = _run(art, ds, "sim", 1 if mapping != "packed" else workers, None, progress=True, record_sample=0,
                  placement=placement)
    float_macs = _float_macs_per_sample(art, int(ds.x.shape[1]))
    cyc = _cycle_timing(art, ds, placement, tgt) if timing == "cycle" else None
    energy = estimate(result.counts, tgt, float_macs_per_sample=float_macs, tiles_used=tiles_used(placement),
                      timing=cyc)
    accuracy = None if ds.y is None else float(np.mean(result.predictions == ds.y))
    meta: dict[str, Any] = {"artifact": str(art.path), "dataset": ds.name, "counts": result.counts.to_dict(),
                            "compiled_for": art.target, "repriced": repriced}
    if predictions:
        meta.update(predictions_of(result, ds))
    data = report_json(energy, result.counts, accuracy=accuracy, meta=meta)
    data.setdefault("accuracy", None)
    if repriced:
        con.print(repriced, highlight=False, markup=False)
    render_terminal(energy, counts=result.counts, console=con, accuracy=accuracy)
    title = f"neurocompile report: {energy.target_display_name}" + (f" ({repriced})" if repriced else "")
    writers: dict[Path, Any] = {}
    if json_path is not None:
        text = report_dumps(data)
        writers[Path(json_path)] = lambda tmp: tmp.write_text(text, encoding="utf-8")
    if html_path is not None:
        raster = getattr(result, "sample_spikes", None) or {}
        placement = getattr(result, "placement", None)
        util = placement.utilisation() if placement is not None and hasattr(placement, "utilisation") else {}
        writers[Path(html_path)] = lambda tmp: render_html(energy, tmp, counts=result.counts, raster=raster,
                                                           core_utilisation=util, accuracy=accuracy, title=title)
    if writers:
        atomic_write_files(writers)
    if html_path is not None:
        con.print(f"HTML report: {html_path}")
    return data


def _float_macs_per_sample(art: Artifact, steps: int) -> int:
    """MACs of the same float model on a conventional processor per sample (decoder after pooling once)."""
    from neurocompile.cost.energy import float_macs_per_sample

    return float_macs_per_sample(art.float_graph or art.int_graph, steps)


# -- inspect -----------------------------------------------------------------------------------------

def _load(model: Path, trust_pickle: bool, config: Any, layout: str | None) -> Any:
    """load_model, or a foreign state_dict mapped with --layout rules (needs --config)."""
    from neurocompile.frontend import load_model

    if layout is not None:
        from neurocompile.frontend.layout import load_with_layout

        return load_with_layout(model, config, layout)
    return load_model(model, trust_pickle=trust_pickle, config=config)


def inspect(path: Path | str, quant: bool = False, as_json: bool = False, config_path: Path | str | None = None,
            console: Console | bool | None = None, trust_pickle: bool = False,
            layout: str | None = None) -> Any:
    """Show the graph of a model file or an artifact as a table (or JSON); ``quant``: the quantisation report."""
    from neurocompile.ir.inspect import describe, render_table

    con = _console(console)
    path = Path(path)
    if path.is_dir():
        art = load_artifact(path)
        if quant:
            from neurocompile.passes.report import render_quant_report

            rep = art.read_json("quant_report.json")
            if rep is None:
                raise ArtifactError(f"artifact '{path}' has no quant_report.json; re-export the model")
            try:
                if as_json:
                    con.print_json(json.dumps(rep, sort_keys=True))
                else:
                    render_quant_report(rep, console=con)
            except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
                raise ArtifactError(f"{path / 'quant_report.json'}: unexpected structure ({type(e).__name__}: "
                                    f"{' '.join(str(e).split())[:120]}); re-export the model") from None
            return rep
        graph = art.int_graph
    else:
        if quant:
            raise NeurocompileError(f"--quant needs an artifact directory; '{path}' is a model file "
                                    "(export it first with 'neurocompile export')")
        from neurocompile.frontend import trace

        graph = trace(_load(path, trust_pickle, read_config(config_path), layout))
    rows = describe(graph)
    if as_json:
        con.print_json(json.dumps(rows, sort_keys=True, default=str))
    else:
        render_table(rows, console=con, title=f"{path.name}: {len(graph)} nodes")
        for r in getattr(graph, "recognised", []):  # what the open frontend recognised, and its numeric proof
            proof = (f"max probe error {r['max_error']:.3g} (scale {r['scale']:.3g})" if "max_error" in r else
                     f"spike agreement {r['agreement']:.5f}, {r['mismatches']} mismatch(es), {r['probes']} probes")
            con.print(f"  recognised {r['module']}: {r['recognised']}; {proof}", highlight=False)
    return rows


# -- finetune ----------------------------------------------------------------------------------------

def finetune(model: Path | str, target: str, dataset: str | None = None, out: Path | str | None = None,
             epochs: int = 3, weight_bits: int | None = None, force: bool = False,
             console: Console | bool | None = None) -> Path:
    """Quantisation-aware fine-tuning of a checkpoint for TARGET's precision; writes a new checkpoint."""
    from neurocompile.finetune import finetune as qat
    from neurocompile.frontend import load_model
    from neurocompile.models import SSMClassifier
    from neurocompile.models.checkpoint import save_checkpoint
    from neurocompile.target import load_target

    con = _console(console)
    model = Path(model)
    tgt = load_target(target)
    loaded = load_model(model)
    spec = dataset or _model_task(loaded)
    if spec is None:
        raise DatasetError("pass --dataset: the model does not say which data it was trained on")
    train = load_dataset(spec, split="train", options=_task_options(loaded, spec))
    out = Path(out) if out is not None else model.with_name(f"{model.stem}.qat.pt")
    check_output_path(out)  # before the long training
    if out.exists() and not force:
        raise NeurocompileError(f"output '{out}' already exists; pass --force to overwrite it")
    tuned, metrics = qat(loaded.module, tgt, train.x, train.y, epochs=epochs, weight_bits=weight_bits)
    if not isinstance(tuned, SSMClassifier):
        raise InternalError(f"fine-tuning returned a {type(tuned).__name__}, not an SSMClassifier", stage="finetune")
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        save_checkpoint(tuned, tmp, metrics={**(metrics or {}), "task": spec})
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    con.print(f"[bold green]fine-tuned[/] {model.name} -> {out}")
    return out


__all__ = ["targets", "export", "check", "convert", "simulate", "report", "inspect", "finetune", "__version__"]
