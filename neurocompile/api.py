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
from neurocompile.artifact import Artifact, dumps, load_artifact, write_artifact
from neurocompile.datasets import Dataset, check_compatible, load_dataset
from neurocompile.errors import ArtifactError, DatasetError, NeurocompileError
from neurocompile.fileio import atomic_write_text

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
    rows = []
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
                  caption="bits: weight mantissa, state, graded message (targets/*.toml)")
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


def export(model: Path | str, target: str, out: Path | str | None = None, weights: str = "int",
           calibration: str | None = None, calibration_method: str = "percentile",
           config_path: Path | str | None = None, trust_pickle: bool = False, layernorm: str | None = None,
           allow_precision_loss: bool = False, weight_bits: int | None = None, state_bits: int | None = None,
           decay_bits: int | None = None, force: bool = False, print_ir: bool = False,
           calibration_samples: int = 512,
           console: Console | bool | None = None, layout: str | None = None) -> Path:
    """Trace MODEL, lower and quantise it for TARGET, check it, and write an artifact directory."""
    from neurocompile.frontend import load_model, trace
    from neurocompile.passes.pipeline import CompileOptions, compile_graph
    from neurocompile.passes.report import quant_report
    from neurocompile.sim.placement import place
    from neurocompile.target import load_target

    con = _console(console)
    model = Path(model)
    tgt = load_target(target)
    config = None
    if config_path is not None:
        try:
            config = json.loads(Path(config_path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise NeurocompileError(f"config file '{config_path}' cannot be read as JSON ({e})") from None
    if model.suffix == ".nir":  # a plain SNN from another framework, through NIR
        from neurocompile.interop.nir import read_nir

        if not model.is_file():
            raise NeurocompileError(f"model file '{model}' does not exist")
        loaded, fgraph = None, read_nir(model)
    else:
        loaded = _load(model, trust_pickle, config, layout)
        fgraph = trace(loaded)
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
    overrides = {"weight_bits": weight_bits, "state_bits": state_bits, "decay_bits": decay_bits}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if layernorm is not None:
        overrides["layernorm"] = layernorm
    options = CompileOptions(weights=weights, calibration=calibration_method, print_ir=print_ir,
                             on_precision="warn" if allow_precision_loss else "error", **overrides)
    if print_ir:
        int_graph, info = compile_graph(fgraph, tgt, calib.x, options, console=con)
    else:
        with con.status(f"compiling {model.name} for {tgt.target.name} ..."):
            int_graph, info = compile_graph(fgraph, tgt, calib.x, options)
    lowered = info.get("float_graph", fgraph) if isinstance(info, dict) else fgraph
    violations = list(info.get("violations", []) if isinstance(info, dict) else [])
    violations += place(int_graph, tgt).violations
    blocking = [v for v in violations if v.severity == "error"]
    if blocking:
        listed = "; ".join(str(v) for v in blocking[:4])
        if len(blocking) > 4:
            listed += f"; and {len(blocking) - 4} more at " + ", ".join(v.node for v in blocking[4:])
        raise NeurocompileError(
            f"model '{model.name}' does not fit target '{tgt.target.name}' ({len(blocking)} design-rule "
            f"error(s)): {listed}. {_fit_advice(blocking)}; nothing was written")
    with con.status("measuring quantisation error ..."):
        qrep = quant_report(lowered, int_graph, calib.x[:128], None if calib.y is None else calib.y[:128])
    out = Path(out) if out is not None else Path(f"{model.stem}.{tgt.target.name}")
    manifest = {
        "model": {"name": fgraph.name, "file": model.name, "family": fgraph.meta.get("family"),
                  "task": task, "task_options": _task_options(loaded, task),
                  "stripped": fgraph.meta.get("stripped", [])},
        "target": {"name": tgt.target.name, "config": tgt.to_dict()},
        "input": {"size": size, "tokens": tokens, "steps": int(calib.x.shape[1])},
        "options": {"weights": weights, "calibration": calib_spec, "calibration_method": calibration_method,
                    "calibration_samples": len(calib), "allow_precision_loss": allow_precision_loss,
                    **overrides},
    }
    writers = []
    try:
        from neurocompile.backends.lava import netx as _netx

        writers.append(lambda d: _netx.write_netx(int_graph, d / "network.net.h5"))
    except Exception:  # noqa: BLE001 - the netx file is optional: Lava or h5py may be missing
        pass
    extra = {"quant_report.json": qrep, "checks.json": [v.to_dict() for v in violations]}
    path = write_artifact(out, int_graph, lowered, manifest, extra_json=extra, writers=writers, force=force)
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
    if out.exists() and not force:
        raise NeurocompileError(f"output '{out}' already exists; pass --force to overwrite it")
    config = json.loads(Path(config_path).read_text()) if config_path else None
    graph = lower_graph(trace(load_model(model, trust_pickle=trust_pickle, config=config)))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        if to == "onnx":
            from neurocompile.interop.onnx import export_onnx

            export_onnx(graph, tmp, spikes=spikes, dtype=dtype)
        else:
            from neurocompile.interop.nir import DEFAULT_DT, write_nir

            write_nir(graph, tmp, dt=DEFAULT_DT if dt is None else dt)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    con.print(f"[bold green]converted[/] {model.name} -> {out} ({to})")
    return out


# -- simulate ----------------------------------------------------------------------------------------

def _dataset_for(art: Artifact, dataset: str | None, limit: int | None) -> Dataset:
    model = art.manifest.get("model", {})
    spec = dataset or model.get("task")
    if spec is None:
        raise DatasetError(f"artifact '{art.path}' does not name its dataset; pass --dataset "
                           "(sdigits, listops or a .npz with x [n, T, d] and y [n])")
    inp = art.manifest["input"]
    options = model.get("task_options") if spec == model.get("task") else None
    ds = check_compatible(load_dataset(spec, split="test", options=options), int(inp["size"]),
                          bool(inp["tokens"]), f"artifact '{art.path.name}'")
    return ds.limit(limit)


def _float_accuracy(art: Artifact, ds: Dataset) -> float | None:
    from neurocompile.ir.interpret import interpret

    if art.float_graph is None or ds.y is None:
        return None
    res = interpret(art.float_graph, ds.x)
    logits = res.outputs[art.float_graph.outputs[0]]
    return float(np.mean(np.argmax(logits, axis=-1) == ds.y))


def _run(art: Artifact, ds: Dataset, backend: str, workers: int, scheduler: str | None,
         progress: bool, record_sample: int | None = None) -> Any:
    from neurocompile.target import load_target

    tgt = load_target(art.target)
    if backend == "lava":
        from neurocompile.backends.lava import simulate_lava

        return simulate_lava(art.int_graph, ds.x, progress=progress)
    if workers > 1 or scheduler:
        from neurocompile.sim.distributed import simulate_distributed

        return simulate_distributed(art.int_graph, ds.x, workers=workers, scheduler_address=scheduler,
                                    target=tgt, progress=progress)
    from neurocompile.sim.engine import simulate as sim

    return sim(art.int_graph, ds.x, target=tgt, progress=progress, record_sample=record_sample,
               batch_size=SIM_BATCH)


#: samples simulated side by side: per-step Python overhead is amortised over the batch (about 1.5x faster
#: than 64 on the bundled model, see benchmarks/sim_vs_lava.py); results do not depend on it
SIM_BATCH = 256


def _layer_rows(result: Any, n_samples: int, steps: int) -> list[dict[str, Any]]:
    rows = []
    for lc in result.counts.layers:
        if lc.kind not in ("QLIF", "QHeaviside", "QRefractory", "QTernarize"):
            continue
        denom = max(1, lc.neurons * n_samples * steps)
        rows.append({"name": lc.name, "kind": lc.kind, "neurons": lc.neurons, "spikes": int(lc.spikes),
                     "spike_rate": lc.spikes / denom, "spikes_per_sample": lc.spikes / max(1, n_samples)})
    return rows


def simulate(artifact: Path | str, dataset: str | None = None, limit: int | None = None,
             json_path: Path | str | None = None, backend: str = "sim", workers: int = 1,
             scheduler: str | None = None, compare_float: bool = True,
             console: Console | bool | None = None) -> dict[str, Any]:
    """Run the integer model of ARTIFACT on a dataset: accuracy (integer and float) and per-layer spikes."""
    con = _console(console)
    if workers < 1:
        raise NeurocompileError(f"--workers must be at least 1, got {workers}")
    art = load_artifact(artifact)
    ds = _dataset_for(art, dataset, limit)
    result = _run(art, ds, backend, workers, scheduler, progress=True)
    steps = int(ds.x.shape[1])
    out: dict[str, Any] = {"artifact": str(art.path), "target": art.target, "backend": backend,
                           "dataset": ds.name, "samples": len(ds), "steps": steps,
                           "accuracy": None, "float_accuracy": None}
    if ds.y is not None:
        out["accuracy"] = float(np.mean(result.predictions == ds.y))
        if compare_float:
            out["float_accuracy"] = _float_accuracy(art, ds)
    out["layers"] = _layer_rows(result, len(ds), steps)
    out["saturations"] = {k: int(v) for k, v in sorted(result.saturations.items()) if v}
    table = Table(title=f"{art.path.name} on {ds.name} ({len(ds)} samples x {steps} steps, backend {backend})")
    for col in ("layer", "neurons", "spikes", "spikes/sample", "spike rate"):
        table.add_column(col, justify="left" if col == "layer" else "right")
    for r in out["layers"]:
        table.add_row(r["name"], str(r["neurons"]), f"{r['spikes']:,}", f"{r['spikes_per_sample']:.1f}",
                      f"{100 * r['spike_rate']:.2f} %")
    con.print(table)
    if out["accuracy"] is not None:
        line = f"integer accuracy: [bold]{100 * out['accuracy']:.2f} %[/]"
        if out["float_accuracy"] is not None:
            delta = 100 * (out["accuracy"] - out["float_accuracy"])
            line += f"   float accuracy: {100 * out['float_accuracy']:.2f} %   (delta {delta:+.2f} points)"
        con.print(line)
    if json_path is not None:
        atomic_write_text(Path(json_path), dumps(out))
    return out


# -- report ------------------------------------------------------------------------------------------

def report(artifact: Path | str, dataset: str | None = None, limit: int | None = None,
           json_path: Path | str | None = None, html_path: Path | str | None = None, workers: int = 1,
           console: Console | bool | None = None) -> dict[str, Any]:
    """Energy, latency and activity of ARTIFACT on a dataset, as terminal tables, JSON and HTML."""
    from neurocompile.report import render_html, render_terminal
    from neurocompile.sim.energy import estimate
    from neurocompile.target import load_target

    con = _console(console)
    art = load_artifact(artifact)
    ds = _dataset_for(art, dataset, limit)
    tgt = load_target(art.target)
    result = _run(art, ds, "sim", workers, None, progress=True, record_sample=0)
    float_macs = _float_macs_per_sample(art, int(ds.x.shape[1]))
    energy = estimate(result.counts, tgt, float_macs_per_sample=float_macs)
    data = energy.to_dict()
    steps = int(ds.x.shape[1])
    data["artifact"] = str(art.path)
    data["dataset"] = ds.name
    data["samples"] = len(ds)
    data["steps"] = steps
    data["accuracy"] = None if ds.y is None else float(np.mean(result.predictions == ds.y))
    data["activity"] = _layer_rows(result, len(ds), steps)
    data["counts"] = result.counts.to_dict()
    render_terminal(data, console=con)
    if json_path is not None:
        atomic_write_text(Path(json_path), dumps(data))
    if html_path is not None:
        raster = getattr(result, "sample_spikes", None) or {}
        placement = getattr(result, "placement", None)
        util = placement.utilisation() if placement is not None and hasattr(placement, "utilisation") else {}
        render_html(data, Path(html_path), raster=raster, core_utilisation=util)
        con.print(f"HTML report: {html_path}")
    return data


def _float_macs_per_sample(art: Artifact, steps: int) -> int:
    """MACs of the same float model on a conventional processor (dense layers + SSM recurrences) per sample."""
    g = art.float_graph or art.int_graph
    macs = 0
    for _, node in g.items():
        op = node.op
        if op in ("Affine", "QDense"):
            macs += int(node.weight.size) * steps
        elif op in ("ModeBank", "QModeBank"):
            macs += 4 * (node.out_size() // 2) * steps + 2 * (node.out_size() // 2) * steps
        elif op in ("ModeReadout", "QModeReadout"):
            macs += (2 * node.out_size() * (node.C.shape[1] if op == "ModeReadout" else node.c_re.shape[1])
                     + node.out_size()) * steps
    return int(macs)


# -- inspect -----------------------------------------------------------------------------------------

def _load(model: Path, trust_pickle: bool, config: Any, layout: str | None) -> Any:
    """load_model, or a foreign state_dict mapped with --layout rules (needs --config)."""
    from neurocompile.frontend import load_model

    if layout is not None:
        from neurocompile.frontend.layout import load_with_layout

        return load_with_layout(model, config, layout)
    return load_model(model, trust_pickle=trust_pickle, config=config)


def inspect(path: Path | str, quant: bool = False, as_json: bool = False, config_path: Path | str | None = None,
            console: Console | bool | None = None, layout: str | None = None) -> Any:
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
            if as_json:
                con.print_json(json.dumps(rep, sort_keys=True))
            else:
                render_quant_report(rep, console=con)
            return rep
        graph = art.int_graph
    else:
        if quant:
            raise NeurocompileError(f"--quant needs an artifact directory; '{path}' is a model file "
                                    "(export it first with 'neurocompile export')")
        from neurocompile.frontend import load_model, trace

        config = json.loads(Path(config_path).read_text()) if config_path else None
        graph = trace(_load(path, False, config, layout))
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
    if out.exists() and not force:
        raise NeurocompileError(f"output '{out}' already exists; pass --force to overwrite it")
    tuned, metrics = qat(loaded.module, tgt, train.x, train.y, epochs=epochs, weight_bits=weight_bits)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        save_checkpoint(tuned, tmp, metrics={**(metrics or {}), "task": spec})
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    con.print(f"[bold green]fine-tuned[/] {model.name} -> {out}")
    return out


__all__ = ["targets", "export", "convert", "simulate", "report", "inspect", "finetune", "__version__"]
