"""neurocompile's simulator vs Lava 0.10.0 (Loihi2SimCfg, fixed_pt) on the same model and inputs.

For every model: the integer graph runs on held-out test samples through the simulator
(``neurocompile.sim.engine.simulate``, default settings: counters on, exact float fast paths) and through the
Lava backend (one Lava Process per node, one sample at a time unless ``--batch``). The script asserts that every
node's output at every step, every final state and every saturation count are identical, then prints the
per-sample time of both and the ratio (goal: the simulator >= 1000x faster).

Models: the shipped checkpoints ``examples/checkpoints/<family>_<task>.pt`` (exported to a temporary artifact),
or ``--artifact DIR`` (repeatable), or, when neither exists, a small randomly initialised spikingssm model.

    .venv/bin/python benchmarks/sim_vs_lava.py [--samples 20] [--batch N] [--artifact DIR ...] [--json out.json]

Lava's time is split into start (compile + worker processes) and stepping; the per-sample figure uses the
stepping time (start is paid once per run). The simulator's time is the best of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FAMILIES = ("spikingssm", "binary_s4d", "gsu", "spike_ssm")
TASKS = ("sdigits", "listops")


def shipped_checkpoints() -> list[tuple[Path, str]]:
    d = ROOT / "examples" / "checkpoints"
    out = []
    for p in sorted(d.glob("*.pt")) if d.is_dir() else []:
        for fam in FAMILIES:  # family names contain '_' themselves (spike_ssm, binary_s4d)
            task = p.stem[len(fam) + 1:]
            if p.stem.startswith(fam + "_") and task in TASKS:
                out.append((p, task))
    return out


def export(model: Path, task: str, tmp: Path) -> Path:
    from neurocompile import api

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return api.export(model, "loihi2", out=tmp / f"{model.stem}.loihi2", force=True, console=False,
                          calibration=task, calibration_samples=256)


def random_model(tmp: Path) -> tuple[Path, str]:
    import torch

    from neurocompile.models import ModelConfig, SSMClassifier, save_checkpoint

    torch.manual_seed(0)
    path = tmp / "random_spikingssm_sdigits.pt"
    cfg = ModelConfig(family="spikingssm", d_input=1, n_classes=10, d_model=32, d_state=16, n_layers=2)
    save_checkpoint(SSMClassifier(cfg).eval(), path, metrics={"task": "sdigits"})
    return path, "sdigits"


def cpu_seconds() -> float:
    """CPU time of this process and of its reaped children (Lava's workers, once the runtime stopped)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def bench(artifact: Path, task: str, samples: int, batch: int | None, repeats: int) -> dict:
    from neurocompile.artifact import load_artifact
    from neurocompile.backends import lava as nl
    from neurocompile.backends.lava.compare import Reference, compare
    from neurocompile.datasets import load_dataset
    from neurocompile.sim.engine import simulate

    art = load_artifact(artifact)
    graph = art.int_graph
    spec = art.manifest.get("model", {}).get("task") or task
    ds = load_dataset(spec, split="test")
    x = ds.x[:samples]
    n, steps = int(x.shape[0]), int(x.shape[1])

    sim_s = sim_cpu = float("inf")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), cpu_seconds()
        simulate(graph, x)
        sim_s = min(sim_s, time.perf_counter() - t0)
        sim_cpu = min(sim_cpu, cpu_seconds() - c0)
    rec = simulate(graph, x, record=True, counters=False)
    # the simulator's throughput on the whole test split (its natural use: batched); same first samples
    full_s = full_cpu = float("inf")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), cpu_seconds()
        full = simulate(graph, ds.x)
        full_s = min(full_s, time.perf_counter() - t0)
        full_cpu = min(full_cpu, cpu_seconds() - c0)
    assert np.array_equal(full.predictions[:n], rec.predictions)

    net = nl.load(graph, batch=batch)
    c0 = cpu_seconds()
    res = nl.run(net, x)
    lava_cpu = cpu_seconds() - c0  # host + every Lava worker, start-up included
    cmp = compare(graph, res, Reference(dict(rec.trace), dict(rec.final_states), 0.0, dict(rec.saturations)))
    assert cmp.equal, f"{artifact.name}: Lava and the simulator differ: {cmp}"
    assert np.array_equal(res.predictions, rec.predictions)
    acc = None if ds.y is None else float(np.mean(res.predictions == ds.y[:n]))
    lava_per = res.run_s / n
    sim_per = sim_s / n
    return {
        "model": artifact.name, "dataset": spec, "nodes": len(graph), "lava_processes": len(net.plan),
        "samples": n, "steps": steps, "lava_batch": batch,
        "values_compared": cmp.values, "identical": cmp.equal, "accuracy": acc,
        "lava_start_s": res.start_s, "lava_run_s": res.run_s, "lava_per_sample_s": lava_per,
        "lava_per_step_ms": 1e3 * res.run_s / (steps * -(-n // (batch or 1))),
        "sim_s": sim_s, "sim_per_sample_s": sim_per, "ratio": lava_per / sim_per,
        "sim_full_samples": int(ds.x.shape[0]), "sim_full_per_sample_s": full_s / ds.x.shape[0],
        "ratio_full": lava_per / (full_s / ds.x.shape[0]),
        "lava_cpu_per_sample_s": lava_cpu / n, "sim_cpu_per_sample_s": sim_cpu / n,
        "ratio_cpu": (lava_cpu / n) / max(sim_cpu / n, 1e-9),
        "sim_full_cpu_per_sample_s": full_cpu / ds.x.shape[0],
        "ratio_cpu_full": (lava_cpu / n) / max(full_cpu / ds.x.shape[0], 1e-9),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifact", action="append", type=Path, default=[], help="artifact directory (repeatable)")
    ap.add_argument("--samples", type=int, default=20, help="held-out test samples per model")
    ap.add_argument("--batch", type=int, default=None, help="Lava: samples side by side (default: one at a time)")
    ap.add_argument("--repeats", type=int, default=3, help="simulator timing: best of N runs")
    ap.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    args = ap.parse_args(argv)

    from neurocompile.backends.lava import lava_available

    if not lava_available():
        from neurocompile.backends.lava import require_lava

        require_lava()  # raises the clear BackendError
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        jobs = [(a, "sdigits") for a in args.artifact]
        if not jobs:
            models = shipped_checkpoints() or [random_model(tmp_path)]
            for model, task in models:
                print(f"exporting {model.name} ...", flush=True)
                jobs.append((export(model, task, tmp_path), task))
        for artifact, task in jobs:
            print(f"running {artifact.name} on {args.samples} samples ...", flush=True)
            rows.append(bench(artifact, task, args.samples, args.batch, args.repeats))

    print()
    print(f"host: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}; Python {platform.python_version()}")
    head = (f"{'model':28s} {'samples':>7s} {'steps':>5s} {'procs':>5s} {'identical':>9s} "
            f"{'lava/sample':>12s} {'lava/step':>10s} {'sim/sample':>11s} {'ratio':>7s} "
            f"{'sim/sample*':>11s} {'ratio*':>7s}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['model']:28s} {r['samples']:7d} {r['steps']:5d} {r['lava_processes']:5d} "
              f"{'yes' if r['identical'] else 'NO':>9s} {r['lava_per_sample_s'] * 1e3:10.1f}ms "
              f"{r['lava_per_step_ms']:8.2f}ms {r['sim_per_sample_s'] * 1e6:9.1f}us {r['ratio']:6.0f}x "
              f"{r['sim_full_per_sample_s'] * 1e6:9.1f}us {r['ratio_full']:6.0f}x")
    print("\nidentical: every node's output at every step, final states and saturation counts, Lava vs simulator")
    print("lava/sample: Lava stepping time per sample (start-up excluded: "
          + ", ".join(f"{r['lava_start_s']:.1f}s" for r in rows) + " per run)")
    print("sim/sample: simulator on the same samples; sim/sample*, ratio*: simulator on the whole test split "
          "(" + ", ".join(str(r["sim_full_samples"]) for r in rows) + " samples, batched as it runs in practice)")
    print("CPU time per sample (less sensitive to other load; Lava: host + all workers, start-up included):")
    for r in rows:
        print(f"  {r['model']:28s} lava {r['lava_cpu_per_sample_s'] * 1e3:8.1f} ms   "
              f"sim {r['sim_cpu_per_sample_s'] * 1e6:8.1f} us   ratio {r['ratio_cpu']:6.0f}x   "
              f"sim* {r['sim_full_cpu_per_sample_s'] * 1e6:8.1f} us   ratio* {r['ratio_cpu_full']:6.0f}x")
    if args.json is not None:
        args.json.write_text(json.dumps({"results": rows, "cpus": os.cpu_count()}, indent=2, sort_keys=True) + "\n")
    slow = [r["model"] for r in rows if max(r["ratio"], r["ratio_full"], r["ratio_cpu_full"]) < 1000]
    if slow:
        print(f"note: simulator less than 1000x faster than Lava for {', '.join(slow)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
