"""The ``neurocompile`` command line. Each command is one public function of :mod:`neurocompile.api`.

Exit status: 0 success; 1 ``check`` found that the model does not fit; 2 an error the user can fix
(NeurocompileError, printed as one line); 3 a neurocompile bug (InternalError: one line naming the pass, the
traceback only with ``NEUROCOMPILE_DEBUG=1``); 130 interrupted. Nothing is left half-written (artifacts and
reports are written atomically).
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from neurocompile import __version__
from neurocompile.errors import InternalError, NeurocompileError

#: exit status of an error the user can fix, and of a neurocompile bug
EXIT_USER, EXIT_BUG = 2, 3
#: set to 1 to see the traceback of a neurocompile bug instead of its one line
DEBUG_ENV = "NEUROCOMPILE_DEBUG"


def _friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn NeurocompileError, InternalError (and Ctrl-C) into one clear line and a non-zero exit, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                # precision and library warnings are collected and printed by the commands themselves
                warnings.simplefilter("ignore")
                return fn(*args, **kwargs)
        except NeurocompileError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(EXIT_USER)
        except InternalError as e:
            if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
                raise
            text = " ".join(str(e).split())  # one line even when a violation spans several
            click.echo(f"error: {text}; rerun with {DEBUG_ENV}=1 for the traceback", err=True)
            sys.exit(EXIT_BUG)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except OSError as e:  # a file-system failure no check caught first: still one line, no traceback
            where = f" '{e.filename}'" if e.filename else ""
            click.echo(f"error: file system error{where}: {e.strerror or e}", err=True)
            sys.exit(EXIT_USER)

    return wrapper


DATASET_HELP = "sdigits, listops, smnist, psmnist, or a .npz with x [n, T, d] (and y [n]); default: the model's own task"


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="neurocompile")
def main() -> None:
    """Compile spiking state-space models for Loihi-style hardware, simulate them bit-exactly, report energy.

    \b
    Typical use:
      neurocompile export examples/checkpoints/spikingssm_sdigits.pt --target loihi2
      neurocompile simulate spikingssm_sdigits.loihi2 --dataset sdigits
      neurocompile report spikingssm_sdigits.loihi2 --html report.html
    """


@main.command("targets")
@click.option("--json", "as_json", is_flag=True, help="Print the targets as JSON.")
@_friendly
def targets_cmd(as_json: bool) -> None:
    """List the hardware targets and their key limits.

    \b
    Example:
      neurocompile targets
      neurocompile targets --json
    """
    from neurocompile import api

    api.targets(as_json=as_json)


@main.command("export")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--target", "-t", required=True, help="Hardware target (see 'neurocompile targets'), or a .toml file.")
@click.option("-o", "--out", type=click.Path(path_type=Path), default=None,
              help="Artifact directory (default: <model stem>.<target>).")
@click.option("--weights", type=click.Choice(["int", "ternary", "binary"]), default="int", show_default=True,
              help="Weight format: integers at the target's weight bits, or ternary/binary times a scale.")
@click.option("--calibration", default=None, help="Calibration data: " + DATASET_HELP + " (train split).")
@click.option("--calibration-method", type=click.Choice(["max", "percentile", "mse"]), default="percentile",
              show_default=True, help="How activation ranges are chosen from calibration data.")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="Architecture config (JSON) for a bare state_dict file.")
@click.option("--trust-pickle", is_flag=True,
              help="Allow loading a fully pickled nn.Module (runs code from the file: only for files you trust).")
@click.option("--layernorm", type=click.Choice(["integer", "freeze", "refuse"]), default=None,
              help="LayerNorm: integer unit (default), frozen to its calibration-average affine map, or refused.")
@click.option("--allow-precision-loss", is_flag=True,
              help="Warn instead of failing when the target's precision changes a node's behaviour.")
@click.option("--weight-bits", type=click.IntRange(1, 32), default=None, help="Use fewer weight bits than the target.")
@click.option("--state-bits", type=click.IntRange(2, 64), default=None, help="Use fewer state bits than the target.")
@click.option("--decay-bits", type=click.IntRange(2, 32), default=None, help="Use fewer decay/rotation bits.")
@click.option("--force", is_flag=True, help="Overwrite an existing artifact directory.")
@click.option("--print-ir", is_flag=True, help="Print the IR after each pass.")
@click.option("--nir-exact", is_flag=True,
              help="NIR input with integer weights: import exactly (weights and thresholds kept, no quantiser).")
@click.option("--synaptic-delay", type=click.IntRange(0, 1), default=1, show_default=True,
              help="With --nir-exact: steps of delay per layer (1: Loihi's timing; 0: NIR's instantaneous edges).")
@click.option("--max-memory", default=None, help="Memory budget for calibration and the export's report, e.g. 4G "
              "(default: 1.25 GiB for calibration, 1.5 GiB for the report).")
@click.option("--layout", default=None,
              help="Key-mapping rules for a foreign state_dict: a built-in layout name or a rules .toml file.")
@click.option("--insert", "inserts", multiple=True, metavar="NAME=VALUE",
              help="Insert a node type on the edges it declares, e.g. sigma-delta=THETA (sigma-delta messaging "
              "from each S4D state to its readout: a change is sent only when |change| >= THETA; 0 is lossless); "
              "repeatable.")
@_friendly
def export_cmd(model: Path, target: str, out: Path | None, weights: str, calibration: str | None,
               calibration_method: str, config_path: Path | None, trust_pickle: bool, layernorm: str | None,
               allow_precision_loss: bool, weight_bits: int | None, state_bits: int | None,
               decay_bits: int | None, force: bool, print_ir: bool, nir_exact: bool, synaptic_delay: int,
               max_memory: str | None,
               layout: str | None, inserts: tuple[str, ...] = ()) -> None:
    """Trace, lower, quantise and map MODEL for TARGET into a deployable artifact directory.

    \b
    Examples:
      neurocompile export examples/checkpoints/spikingssm_sdigits.pt --target loihi2
      neurocompile export model.pt2 --target loihi1 -o out/model.loihi1 --calibration data.npz
      neurocompile export gsu.pt --target loihi2 --weights ternary
      neurocompile export snn.nir --target loihi1 --nir-exact --calibration spikes.npz
      neurocompile export binary_s4d_sdigits.pt --target loihi2 --insert sigma-delta=0
    """
    from neurocompile import api
    from neurocompile.passes.pipeline import parse_inserts

    api.export(model, target, out=out, weights=weights, calibration=calibration,
               calibration_method=calibration_method, config_path=config_path, trust_pickle=trust_pickle,
               layernorm=layernorm, allow_precision_loss=allow_precision_loss, weight_bits=weight_bits,
               state_bits=state_bits, decay_bits=decay_bits, force=force, print_ir=print_ir, nir_exact=nir_exact,
               synaptic_delay=synaptic_delay, max_memory=max_memory, layout=layout,
               insert=parse_inserts(inserts))


@main.command("check")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--target", "-t", default=None, help="Hardware target (default for an artifact: its own).")
@click.option("--json", "as_json", is_flag=True, help="Print the resource report as JSON.")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="Architecture config (JSON) for a bare state_dict file.")
@click.option("--trust-pickle", is_flag=True, help="Allow loading a fully pickled nn.Module (only files you trust).")
@_friendly
def check_cmd(path: Path, target: str | None, as_json: bool, config_path: Path | None, trust_pickle: bool) -> None:
    """Does a MODEL file (its shapes; no calibration) or an ARTIFACT fit TARGET? Exit status 1 when not.

    \b
    Prints the resources used against available per core and chip, the lower bound of cores and the findings
    (rule, node, resource, usage, limit, fix).
    Examples:
      neurocompile check model.pt --target loihi2
      neurocompile check spikingssm_sdigits.loihi2 --json
    """
    from neurocompile import api

    rep = api.check(path, target, as_json=as_json, config_path=config_path, trust_pickle=trust_pickle)
    if not rep["fits"]:
        sys.exit(1)


@main.command("convert")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--to", "to", type=click.Choice(["onnx", "nir"]), required=True, help="Output format.")
@click.option("-o", "--out", type=click.Path(path_type=Path), default=None,
              help="Output file (default: <model stem>.onnx / .nir).")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32", show_default=True,
              help="ONNX arithmetic precision.")
@click.option("--spikes", is_flag=True, help="ONNX: also output every neuron layer's spikes.")
@click.option("--dt", type=float, default=None, help="NIR: time step in seconds for continuous-time neurons.")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="Architecture config (JSON) for a bare state_dict file.")
@click.option("--trust-pickle", is_flag=True, help="Allow loading a fully pickled nn.Module (only files you trust).")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@_friendly
def convert_cmd(model: Path, to: str, out: Path | None, dtype: str, spikes: bool, dt: float | None,
                config_path: Path | None, trust_pickle: bool, force: bool) -> None:
    """Write MODEL's float graph as ONNX (one streaming step with explicit states) or NIR.

    \b
    NIR 1.0 has no diagonal-SSM node, so SSM models are refused there with an error naming the node;
    plain SNNs (Affine + LIF) convert both ways ('neurocompile export net.nir --target loihi2').
    Examples:
      neurocompile convert examples/checkpoints/spikingssm_sdigits.pt --to onnx
      neurocompile convert model.pt --to onnx --spikes -o model_step.onnx
    """
    from neurocompile import api

    api.convert(model, to, out=out, dtype=dtype, spikes=spikes, dt=dt, config_path=config_path,
                trust_pickle=trust_pickle, force=force)


@main.command("simulate")
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--dataset", default=None, help=DATASET_HELP + " (test split).")
@click.option("--limit", type=int, default=None, help="Use only the first N samples.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Write results as JSON.")
@click.option("--backend", type=click.Choice(["sim", "lava"]), default="sim", show_default=True,
              help="neurocompile's vectorised simulator, or Lava processes (Loihi2SimCfg, fixed_pt).")
@click.option("--workers", type=int, default=1, show_default=True, help="Shard samples over N Dask processes.")
@click.option("--scheduler", default=None, help="Address of an existing Dask scheduler to send the work to.")
@click.option("--no-float", is_flag=True, help="Skip the float-model accuracy comparison.")
@click.option("--timing", type=click.Choice(["cycle"]), default=None,
              help="Also schedule every step event by event and print the per-step latency distribution.")
@click.option("--predictions", is_flag=True, help="Add per-sample predictions and labels to the JSON.")
@click.option("--sim-backend", type=click.Choice(["auto", "compiled", "numpy"]), default="auto", show_default=True,
              help="Simulator engine: the compiled step (numba), the NumPy engine, or compiled when available.")
@click.option("--max-memory", default=None, help="Memory budget, e.g. 2G (default 2G): the float comparison runs "
              "in chunks within it and is skipped, with a note, when one sequence does not fit.")
@_friendly
def simulate_cmd(artifact: Path, dataset: str | None, limit: int | None, json_path: Path | None, backend: str,
                 workers: int, scheduler: str | None, no_float: bool, timing: str | None, predictions: bool,
                 sim_backend: str, max_memory: str | None) -> None:
    """Run the integer model bit-exactly: accuracy (integer and float) and per-layer spikes.

    \b
    Examples:
      neurocompile simulate spikingssm_sdigits.loihi2 --dataset sdigits
      neurocompile simulate spikingssm_sdigits.loihi2 --limit 20 --backend lava
      neurocompile simulate model.loihi2 --dataset test.npz --workers 2 --json sim.json
    """
    from neurocompile import api

    api.simulate(artifact, dataset=dataset, limit=limit, json_path=json_path, backend=backend, workers=workers,
                 scheduler=scheduler, compare_float=not no_float, timing=timing, predictions=predictions,
                 sim_backend=sim_backend, max_memory=max_memory)


@main.command("report")
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--dataset", default=None, help=DATASET_HELP + " (test split).")
@click.option("--limit", type=int, default=None, help="Use only the first N samples.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Write the report as JSON.")
@click.option("--html", "html_path", type=click.Path(path_type=Path), default=None,
              help="Write a self-contained HTML report with figures.")
@click.option("--workers", type=int, default=1, show_default=True, help="Shard samples over N Dask processes.")
@click.option("--timing", type=click.Choice(["analytical", "cycle"]), default="analytical", show_default=True,
              help="Latency model: per-step formula over run totals, or an event-driven schedule of every step.")
@click.option("--mapping", default="packed", show_default=True,
              help="Placement: packed, layer-per-core, or a JSON placement file (node -> core or cores).")
@click.option("--predictions", is_flag=True, help="Add per-sample predictions and labels to the JSON.")
@click.option("--target", "-t", default=None,
              help="Price the same activity with another target (name or .toml); default: the one the artifact "
                   "was compiled for, stored in it.")
@_friendly
def report_cmd(artifact: Path, dataset: str | None, limit: int | None, json_path: Path | None,
               html_path: Path | None, workers: int, timing: str, mapping: str, predictions: bool,
               target: str | None) -> None:
    """Energy, latency and activity of ARTIFACT on a dataset: terminal tables, JSON and HTML.

    \b
    Examples:
      neurocompile report spikingssm_sdigits.loihi2
      neurocompile report spikingssm_sdigits.loihi2 --json report.json --html report.html
      neurocompile report model.loihi1 --timing cycle --mapping layer-per-core
      neurocompile report spikingssm_sdigits.loihi2 --target loihi1   (re-priced, and it says so)
    """
    from neurocompile import api

    api.report(artifact, dataset=dataset, limit=limit, json_path=json_path, html_path=html_path, workers=workers,
               timing=timing, mapping=mapping, predictions=predictions, target=target)


@main.command("inspect")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--quant", is_flag=True, help="Show the per-node quantisation report of an artifact.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="Architecture config (JSON) for a bare state_dict file.")
@click.option("--trust-pickle", is_flag=True, help="Allow loading a fully pickled nn.Module (only files you trust).")
@click.option("--layout", default=None,
              help="Key-mapping rules for a foreign state_dict: a built-in layout name or a rules .toml file.")
@_friendly
def inspect_cmd(path: Path, quant: bool, as_json: bool, config_path: Path | None, trust_pickle: bool,
                layout: str | None) -> None:
    """Show the graph of a model file or an artifact as a table (node, op, shapes, parameters, bits).

    \b
    Examples:
      neurocompile inspect examples/checkpoints/spikingssm_sdigits.pt
      neurocompile inspect spikingssm_sdigits.loihi2 --quant
    """
    from neurocompile import api

    api.inspect(path, quant=quant, as_json=as_json, config_path=config_path, trust_pickle=trust_pickle, layout=layout)


@main.command("finetune")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--target", "-t", required=True, help="Hardware target whose precision to train for.")
@click.option("--dataset", default=None, help=DATASET_HELP + " (train split is used for training).")
@click.option("-o", "--out", type=click.Path(path_type=Path), default=None,
              help="Output checkpoint (default: <model stem>.qat.pt).")
@click.option("--epochs", type=int, default=3, show_default=True)
@click.option("--weight-bits", type=int, default=None, help="Override the target's weight bits.")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@_friendly
def finetune_cmd(model: Path, target: str, dataset: str | None, out: Path | None, epochs: int,
                 weight_bits: int | None, force: bool) -> None:
    """Quantisation-aware fine-tuning (straight-through estimators) for the target's precision.

    \b
    Example:
      neurocompile finetune examples/checkpoints/spikingssm_sdigits.pt --target loihi2 --dataset sdigits
    """
    from neurocompile import api

    api.finetune(model, target, dataset=dataset, out=out, epochs=epochs, weight_bits=weight_bits, force=force)


if __name__ == "__main__":  # pragma: no cover
    main()
