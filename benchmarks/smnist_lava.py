"""Lava 0.10.0 vs neurocompile's simulator on full-length sequential MNIST samples (784 steps each).

For every sequential-MNIST model (the shipped ``examples/checkpoints/*_smnist.pt`` / ``*_psmnist.pt``, exported
to loihi2 in a temporary folder, or ``--artifact DIR``), the first ``--samples`` held-out test digits (default 3)
run through the Lava backend (side by side in one network) and through the simulator. Every node's output at
every one of the 784 steps, every final state and every saturation count must be identical; the script exits 1
otherwise. It prints the Lava time per step and per sample (Lava runs ~ms per step, so a 784-step sample takes
seconds; the test suite checks fewer steps, see tests/test_smnist_models.py).

``--accuracy N`` also simulates the first N held-out digits (N = 1000: the whole test split) with the integer
simulator and the float model and fails (exit 1) when the integer accuracy is more than ``--max-drop`` points
(default 1) away from the float accuracy: the deployment criterion of issue 17, too slow for the test suite
(minutes per model at 784 steps).

    .venv/bin/python benchmarks/smnist_lava.py [--samples 3] [--steps 784] [--artifact DIR ...] [--json out.json]
        [--accuracy 1000 [--max-drop 1.0]]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FAMILIES = ("spikingssm", "binary_s4d", "gsu", "spike_ssm")
TASKS = ("smnist", "psmnist")


def shipped() -> list[tuple[Path, str]]:
    """examples/checkpoints/<family>_<smnist|psmnist>.pt with their task."""
    out = []
    for p in sorted((ROOT / "examples" / "checkpoints").glob("*.pt")):
        for fam in FAMILIES:
            task = p.stem[len(fam) + 1:]
            if p.stem.startswith(fam + "_") and task in TASKS:
                out.append((p, task))
    return out


def export(model: Path, task: str, tmp: Path, calibration_samples: int) -> Path:
    from neurocompile import api

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return api.export(model, "loihi2", out=tmp / f"{model.stem}.loihi2", force=True, console=False,
                          calibration=task, calibration_samples=calibration_samples)


def check(artifact: Path, samples: int, steps: int) -> dict:
    """Lava vs simulator on the first ``samples`` test digits, ``steps`` steps; returns the measured row."""
    from neurocompile.artifact import load_artifact
    from neurocompile.backends import lava as nl
    from neurocompile.backends.lava.compare import compare, simulate_reference
    from neurocompile.datasets import load_dataset

    art = load_artifact(artifact)
    task = art.manifest.get("model", {}).get("task") or "smnist"
    ds = load_dataset(task, split="test")
    x = ds.x[:samples, :steps]
    t0 = time.perf_counter()
    ref = simulate_reference(art.int_graph, x)
    sim_s = time.perf_counter() - t0
    net = nl.load(art.int_graph, batch=samples)
    res = nl.run(net, x)
    cmp = compare(art.int_graph, res, ref)
    return {
        "model": artifact.name, "task": task, "samples": samples, "steps": int(x.shape[1]),
        "identical": cmp.equal, "values_compared": cmp.values, "mismatches": cmp.mismatches[:8],
        "predictions_lava": np.asarray(res.predictions).tolist(), "labels": ds.y[:samples].tolist(),
        "lava_start_s": res.start_s, "lava_run_s": res.run_s,
        "lava_per_step_ms": 1e3 * res.run_s / x.shape[1], "sim_s": sim_s,
    }


def accuracy(artifact: Path, limit: int) -> dict:
    """Integer (simulator) and float accuracy on the first ``limit`` test digits, as ``neurocompile simulate``."""
    from neurocompile import api

    t0 = time.perf_counter()
    res = api.simulate(artifact, limit=limit, console=False)
    return {"accuracy_samples": int(res["samples"]), "integer_accuracy": res["accuracy"],
            "float_accuracy": res["float_accuracy"], "simulate_s": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifact", action="append", type=Path, default=[], help="artifact directory (repeatable)")
    ap.add_argument("--samples", type=int, default=3, help="held-out test digits per model (run side by side)")
    ap.add_argument("--steps", type=int, default=784, help="steps per sample (784 = the whole digit)")
    ap.add_argument("--calibration-samples", type=int, default=128,
                    help="training digits to calibrate the export with (512, the CLI default, needs ~10 GB at H = 64)")
    ap.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    ap.add_argument("--accuracy", type=int, default=0, metavar="N",
                    help="also compare integer and float accuracy on the first N test digits (0: skip)")
    ap.add_argument("--max-drop", type=float, default=1.0, help="points the integer accuracy may differ from the float one")
    args = ap.parse_args(argv)

    from neurocompile.backends.lava import lava_available, require_lava

    if not lava_available():
        require_lava()  # raises the clear BackendError
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        jobs = list(args.artifact)
        if not jobs:
            models = shipped()
            if not models:
                print("no examples/checkpoints/*_smnist.pt or *_psmnist.pt and no --artifact given")
                return 1
            for model, task in models:
                print(f"exporting {model.name} ...", flush=True)
                jobs.append(export(model, task, Path(tmp), args.calibration_samples))
        for artifact in jobs:
            print(f"running {artifact.name}: {args.samples} samples x {args.steps} steps on Lava ...", flush=True)
            row = check(artifact, args.samples, args.steps)
            if args.accuracy:
                print(f"simulating {artifact.name}: {args.accuracy} test digits, integer and float ...", flush=True)
                row.update(accuracy(artifact, args.accuracy))
            rows.append(row)

    head = f"{'model':26s} {'task':8s} {'samples':>7s} {'steps':>5s} {'identical':>9s} {'integers':>10s} " \
           f"{'lava start':>10s} {'lava/step':>10s} {'lava/sample':>11s}"
    print("\n" + head + "\n" + "-" * len(head))
    for r in rows:
        print(f"{r['model']:26s} {r['task']:8s} {r['samples']:7d} {r['steps']:5d} "
              f"{'yes' if r['identical'] else 'NO':>9s} {r['values_compared']:10d} {r['lava_start_s']:9.1f}s "
              f"{r['lava_per_step_ms']:8.2f}ms {r['lava_run_s'] / r['samples']:10.2f}s")
    print("identical: every node's output at every step, final states and saturation counts, Lava vs simulator;"
          " samples run side by side, so lava/sample = run time / samples")
    for r in rows:
        if "integer_accuracy" in r:
            drop = 100 * (r["float_accuracy"] - r["integer_accuracy"])
            r["accuracy_ok"] = abs(drop) <= args.max_drop
            print(f"{r['model']}: integer {100 * r['integer_accuracy']:.2f} % vs float {100 * r['float_accuracy']:.2f} % "
                  f"on {r['accuracy_samples']} digits (drop {drop:+.2f} points, allowed {args.max_drop}): "
                  f"{'ok' if r['accuracy_ok'] else 'TOO LARGE'}")
    if args.json is not None:
        args.json.write_text(json.dumps({"results": rows}, indent=2, sort_keys=True) + "\n")
    bad = [r["model"] for r in rows if not r["identical"] or not r.get("accuracy_ok", True)]
    for r in rows:
        if not r["identical"]:
            print(f"{r['model']}: " + "; ".join(r["mismatches"]))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
