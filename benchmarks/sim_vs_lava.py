"""neurocompile's simulator vs Lava 0.10.0 (Loihi2SimCfg, fixed_pt) on the same model and inputs.

For every model: the integer graph runs on held-out test samples through the simulator
(``neurocompile.sim.engine.simulate``, default settings: counters on, exact float fast paths) and through the
Lava backend (one Lava Process per node, one sample at a time unless ``--batch``). The script asserts that every
node's output at every step, every final state and every saturation count are identical, then prints the
per-sample time of both and the ratios: batch 1 (one sample at a time, as Lava runs, through a streaming
``Session``: each sample's steps in one call, and one ``step()`` call per time step) and batched (``simulate`` over
the whole test split). Goal: the simulator >= 1000x faster per sample, one sample at a time.

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
    # one sample at a time, as Lava runs: a streaming Session, reset per sample; (a) the sample's T steps in one
    # call, (b) one step() call per time step (token streaming); the logits after the last step are checked
    from neurocompile import Session

    sess = Session(graph)
    out_name = graph.outputs[0]

    def per_sample(stepwise: bool) -> np.ndarray:
        preds = np.zeros(n, np.int64)
        for i in range(n):
            sess.reset()
            if stepwise:
                for t in range(steps):
                    o = sess.step(x[i, t], ends=t == steps - 1)
            else:
                o = sess.run(x[i])
            v = o[out_name]
            preds[i] = int(np.argmax(v if v.ndim == 1 else v[-1]))
        return preds
    per_sample(False)  # numba: load the cache (or compile) outside the timing
    stream_s = step_s = stream_cpu = float("inf")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), cpu_seconds()
        preds = per_sample(False)
        stream_s = min(stream_s, time.perf_counter() - t0)
        stream_cpu = min(stream_cpu, cpu_seconds() - c0)
        assert np.array_equal(preds, rec.predictions), "streaming Session differs from the whole-sequence run"
        t0 = time.perf_counter()
        assert np.array_equal(per_sample(True), rec.predictions)
        step_s = min(step_s, time.perf_counter() - t0)

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
        "sim_backend": full.backend, "session_backend": sess.backend,
        "stream_per_sample_s": stream_s / n, "ratio_stream": lava_per / (stream_s / n),
        "stream_cpu_per_sample_s": stream_cpu / n, "ratio_cpu_stream": (lava_cpu / n) / max(stream_cpu / n, 1e-9),
        "step_per_sample_s": step_s / n, "ratio_step": lava_per / (step_s / n),
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
    load0 = os.getloadavg()[0]  # Lava's and the simulator's wall-clock times both move with the machine's load
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
          f"load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; Python "
          f"{platform.python_version()}")
    head = (f"{'model':28s} {'samples':>7s} {'steps':>5s} {'identical':>9s} {'lava/sample':>12s} "
            f"{'stream':>10s} {'ratio':>7s} {'step()':>10s} {'ratio':>7s} {'batched':>10s} {'ratio':>7s} "
            f"{'simulate':>10s} {'ratio':>7s}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['model']:28s} {r['samples']:7d} {r['steps']:5d} {'yes' if r['identical'] else 'NO':>9s} "
              f"{r['lava_per_sample_s'] * 1e3:10.1f}ms {r['stream_per_sample_s'] * 1e6:8.1f}us "
              f"{r['ratio_stream']:6.0f}x {r['step_per_sample_s'] * 1e6:8.1f}us {r['ratio_step']:6.0f}x "
              f"{r['sim_full_per_sample_s'] * 1e6:8.1f}us {r['ratio_full']:6.0f}x "
              f"{r['sim_per_sample_s'] * 1e6:8.1f}us {r['ratio']:6.0f}x")
    print("\nidentical: every node's output at every step, final states and saturation counts, Lava vs simulator")
    print("lava/sample: Lava stepping time per sample, one sample at a time (start-up excluded: "
          + ", ".join(f"{r['lava_start_s']:.1f}s" for r in rows) + " per run); lava/step: "
          + ", ".join(f"{r['lava_per_step_ms']:.2f}ms" for r in rows))
    print("stream: batch 1, one sample at a time, a Session running each sample's T steps in one call "
          f"({rows[0]['session_backend'] if rows else ''} step); step(): the same with one Session.step call per "
          "time step (token streaming)")
    print("batched: simulate() over the whole test split (" + ", ".join(str(r["sim_full_samples"]) for r in rows)
          + " samples, batch 64, counters on); simulate: simulate() on the same samples as Lava "
          "(per-call set-up: plan, placement, counters)")
    print("CPU time per sample (less sensitive to other load; Lava: host + all workers, start-up included):")
    for r in rows:
        print(f"  {r['model']:28s} lava {r['lava_cpu_per_sample_s'] * 1e3:8.1f} ms   "
              f"stream {r['stream_cpu_per_sample_s'] * 1e6:8.1f} us  ratio {r['ratio_cpu_stream']:6.0f}x   "
              f"batched {r['sim_full_cpu_per_sample_s'] * 1e6:8.1f} us  ratio {r['ratio_cpu_full']:6.0f}x")
    if args.json is not None:
        args.json.write_text(json.dumps({"results": rows, "cpus": os.cpu_count()}, indent=2, sort_keys=True) + "\n")
    for r in rows:  # the goal: one sample at a time, per sample, >= 1000x Lava's stepping time
        verdict = "met" if r["ratio_stream"] >= 1000 else "NOT met"
        print(f"goal >= 1000x per sample, one at a time ({r['model']}): {verdict} ({r['ratio_stream']:.0f}x; "
              f"batched {r['ratio_full']:.0f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
