"""Simulator throughput: synaptic events per second of the integer engine on a 4-layer H=256 spiking SSM.

The model is a random but valid integer graph built directly from hardware nodes (no quantiser):

    QInput(d) -> QDense enc -> 4 x [ QModeBank(M) -> QModeReadout -> QLIF -> QDense a, QDense b
                                     -> QLUT(sigmoid)(b) -> QMul(a, lut) -> QAdd(residual) ]
              -> QAccumulate -> QDense readout (sequence end)

Synaptic events = ``synops_dense`` processed (fan_in x fan_out per step of every dense connection, non-zero
weights of the block-diagonal QModeBank input and QModeReadout), counted by the simulator itself. The baseline is
a float32 matrix multiply of the same dense shapes at the same batch size, timed in the same run. The share of
those events with a non-zero input is printed too: a dense fed by spikes runs event-driven in the simulator
(it adds the weight rows of the non-zero inputs, as the chip does), while the float32 product pays for every one.

    .venv/bin/python benchmarks/sim_throughput.py [--hidden 256] [--modes 16] [--layers 4] [--batch 64]
        [--steps 64] [--samples 128] [--arith auto] [--no-counters] [--threads 1] [--repeats 3]
        [--backends compiled compiled-blas numpy] [--json out.json]

The machine may be shared: the simulation is timed ``--repeats`` times and the best (least disturbed) run is
reported next to the median; the float32 baseline is the best of 3. The comparison is on the same number of cores:
the baseline's BLAS is limited (threadpoolctl) to ``--threads`` threads, the simulator's thread count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from neurocompile.ir import hw  # noqa: E402
from neurocompile.ir.graph import Graph  # noqa: E402
from neurocompile.sim import compiled_nodes  # noqa: E402
from neurocompile.sim.engine import simulate  # noqa: E402

SPARSE_MAX = compiled_nodes.SPARSE_MAX


def build_model(hidden: int = 256, modes: int = 16, layers: int = 4, d_in: int = 16, classes: int = 10,
                seed: int = 0) -> Graph:
    """A random, valid integer spiking-SSM graph (weights 8 bit, states 24 bit, decays 12 bit)."""
    rng = np.random.default_rng(seed)
    g = Graph("bench")
    h, m = hidden, modes

    def w(*shape: int, bits: int = 8) -> np.ndarray:
        lim = (1 << (bits - 1)) - 1
        return rng.integers(-lim, lim + 1, size=shape).astype(np.int64)

    g.add("x", hw.QInput(size=d_in, out_scale=1 / 64, out_bits=8))
    g.inputs = ["x"]
    g.add("enc", hw.QDense(weight=w(h, d_in), bias=np.zeros(h, np.int64), shift=np.full(h, 6, np.int64),
                           out_bits=16), "x")
    prev = "enc"
    for i in range(layers):
        mag = rng.uniform(0.80, 0.99, (h, m))
        ang = rng.uniform(0, np.pi / 4, (h, m))
        a_re = np.round(mag * np.cos(ang) * 4096).astype(np.int64)
        a_im = np.round(mag * np.sin(ang) * 4096).astype(np.int64)
        g.add(f"l{i}.ssm", hw.QModeBank(a_re=a_re, a_im=a_im, b_re=w(h, m), b_im=w(h, m),
                                          b_shift=np.full(h, 4, np.int64), out_bits=24), prev)
        g.add(f"l{i}.ro", hw.QModeReadout(c_re=w(h, m), c_im=w(h, m), d=w(h), shift=np.full(h, 14, np.int64),
                                            out_bits=16), {"state": f"l{i}.ssm", "skip": prev})
        g.add(f"l{i}.lif", hw.QLIF(decay=512, vth=np.full(h, 64, np.int64), state_bits=24), f"l{i}.ro")
        g.add(f"l{i}.a", hw.QDense(weight=w(h, h), bias=np.zeros(h, np.int64), shift=np.full(h, 2, np.int64),
                                   out_bits=16), f"l{i}.lif")
        g.add(f"l{i}.b", hw.QDense(weight=w(h, h), bias=np.zeros(h, np.int64), shift=np.full(h, 2, np.int64),
                                   out_bits=16), f"l{i}.lif")
        xs = np.arange(256)
        table = np.round(255 / (1 + np.exp(-(xs - 128) / 16))).astype(np.int64)
        g.add(f"l{i}.sig", hw.QLUT(table=table, in_shift=4, offset=128, fn="sigmoid", size=h, out_bits=9),
              f"l{i}.b")
        g.add(f"l{i}.glu", hw.QMul(shift=8, size=h, out_bits=16), {"a": f"l{i}.a", "b": f"l{i}.sig"})
        g.add(f"l{i}.res", hw.QAdd(size=h, out_bits=16), [f"l{i}.glu", prev])
        prev = f"l{i}.res"
    g.add("pool", hw.QAccumulate(size=h, out_bits=32), prev)
    g.add("head", hw.QDense(weight=w(classes, h), bias=np.zeros(classes, np.int64),
                            shift=np.zeros(classes, np.int64), out_bits=0), "pool")
    g.outputs = ["head"]
    return g


def dense_shapes(g: Graph) -> list[tuple[int, int]]:
    """(in, out) of every per-step QDense (the shapes the float32 baseline multiplies)."""
    seq = g.sequence_end_nodes()
    return [(int(n.weight.shape[1]), int(n.weight.shape[0])) for name, n in g.items()
            if isinstance(n, hw.QDense) and name not in seq]


def float32_baseline(shapes: list[tuple[int, int]], batch: int, threads: int = 1,
                     repeats: int = 200) -> tuple[float, float]:
    """MACs per second of float32 x @ W for the given shapes at this batch size (best of 3), by wall-clock and
    by CPU time (the machine may be shared: CPU time is less disturbed by other load), with the BLAS limited to
    ``threads`` threads (the simulator's: a fair rate per core used)."""
    with threadpool_limits(limits=threads, user_api="blas"):
        return _float32_rate(shapes, batch, repeats)


def blas_threads() -> int:
    """Threads the loaded BLAS would use unlimited (threadpoolctl; 0 when none is loaded)."""
    return max((int(p["num_threads"]) for p in threadpool_info() if p.get("user_api") == "blas"), default=0)


def _float32_rate(shapes: list[tuple[int, int]], batch: int, repeats: int) -> tuple[float, float]:
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((batch, i)).astype(np.float32) for i, _ in shapes]
    ws = [rng.standard_normal((i, o)).astype(np.float32) for i, o in shapes]
    outs = [np.empty((batch, o), np.float32) for _, o in shapes]
    macs = repeats * batch * sum(i * o for i, o in shapes)
    best = best_cpu = float("inf")
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(repeats):
            for x, w, o in zip(xs, ws, outs):
                np.matmul(x, w, out=o)
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return macs / best, macs / best_cpu


def _time(g: Graph, x: np.ndarray, a: argparse.Namespace, label: str, base: float, base_cpu: float) -> dict:
    """One row: ``label``'s simulation of x timed a.repeats times (best and median), with its rates."""
    backend = "compiled" if label == "compiled-blas" else label
    compiled_nodes.SPARSE_MAX = -1.0 if label == "compiled-blas" else SPARSE_MAX
    t0 = time.perf_counter()
    simulate(g, x[: a.batch, :4], batch_size=a.batch, arith=a.arith, backend=backend)  # warm-up (numba load)
    warm = time.perf_counter() - t0
    walls, cpus = [], []
    for _ in range(max(1, a.repeats)):
        t0, c0 = time.perf_counter(), time.process_time()
        res = simulate(g, x, batch_size=a.batch, counters=not a.no_counters, arith=a.arith, threads=a.threads,
                       backend=backend)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    wall, cpu = min(walls), min(cpus)
    counts = res.counts if res.counts is not None else simulate(g, x, batch_size=a.batch, arith=a.arith).counts
    synops = counts.total("synops_dense")  # counted by the simulator (not timed when the run had no counters)
    effective = counts.total("synops_effective_mac") + counts.total("synops_effective_ac")
    rate = synops / wall
    return {
        "model": f"{a.layers} layers, H={a.hidden}, M={a.modes}", "backend": label,
        "batch": a.batch, "steps": a.steps, "samples": a.samples, "arith": a.arith, "threads": a.threads,
        "counters": not a.no_counters, "warmup_s": warm,
        "wall_s": wall,
        "wall_s_median": float(np.median(walls)),
        "synaptic_events_per_s_median": synops / float(np.median(walls)),
        "synops_dense": synops, "synops_effective": effective,
        "ratio_to_float32_matmul_median": (synops / float(np.median(walls))) / base,
        "synaptic_events_per_s": rate,
        "float32_matmul_macs_per_s": base, "float32_blas_threads": a.threads,
        "blas_threads_unlimited": blas_threads(),
        "ratio_to_float32_matmul": rate / base,
        "cpu_s": cpu, "float32_matmul_macs_per_cpu_s": base_cpu,
        "ratio_to_float32_matmul_cpu": (synops / cpu) / base_cpu,
        "paths": sorted(set(res.paths.values())) if res.backend == "numpy" else ["compiled"],
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "numpy": np.__version__,
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--modes", type=int, default=16)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--arith", default="auto", choices=("auto", "int64", "reference"))
    ap.add_argument("--no-counters", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="batches simulated concurrently (engine threads)")
    ap.add_argument("--backends", nargs="+", default=["compiled", "compiled-blas", "numpy"],
                    choices=("auto", "compiled", "compiled-blas", "numpy"),
                    help="simulator backends timed side by side (compiled-blas: the compiled step with every "
                         "exact float32 dense as a BLAS product, none event-driven)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)

    g = build_model(a.hidden, a.modes, a.layers)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((a.samples, a.steps, 16)).astype(np.float32)
    base, base_cpu = float32_baseline(dense_shapes(g), a.batch, threads=a.threads)
    try:
        rows = [_time(g, x, a, label, base, base_cpu) for label in a.backends]
    finally:
        compiled_nodes.SPARSE_MAX = SPARSE_MAX
    print(f"model: {rows[0]['model']}, batch {a.batch}, {a.samples} samples x {a.steps} steps, arith {a.arith}, "
          f"counters {'on' if not a.no_counters else 'off'}, threads {a.threads}; load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"float32 matmul (same dense shapes, batch {a.batch}, BLAS limited to {a.threads} thread(s) as the "
          f"simulator; {blas_threads()} unlimited): {base:.3e} MAC/s ({base_cpu:.3e} per CPU second)")
    eff = rows[0]["synops_effective"] / rows[0]["synops_dense"]
    print(f"synaptic events with a non-zero input: {eff:.1%} (the float32 product pays for all; the simulator's "
          "event-driven denses, like the chip, skip the rest; compiled-blas does not)")
    for out in rows:
        print(f"[{out['backend']}] wall time: {out['wall_s']:.3f} s (best of {a.repeats}; median "
              f"{out['wall_s_median']:.3f} s; warm-up {out['warmup_s']:.2f} s) for {out['synops_dense']:,} "
              "synaptic events")
        print(f"[{out['backend']}] synaptic events per second: {out['synaptic_events_per_s']:.3e} (median run: "
              f"{out['synaptic_events_per_s_median']:.3e}); ratio engine / float32 matmul: "
              f"{out['ratio_to_float32_matmul']:.3f}; by CPU time {out['ratio_to_float32_matmul_cpu']:.3f} "
              f"({out['cpu_s']:.3f} CPU s); median run {out['ratio_to_float32_matmul_median']:.3f}")
    best = max(r["ratio_to_float32_matmul"] for r in rows)
    best_cpu = max(r["ratio_to_float32_matmul_cpu"] for r in rows)
    print(f"goal >= 0.3 of the float32 matmul rate: {'met' if best >= 0.3 else 'NOT met'} ({best:.3f} wall-clock; "
          f"{best_cpu:.3f} by CPU time)")
    if a.json:
        a.json.write_text(json.dumps(rows if len(rows) > 1 else rows[0], indent=2, sort_keys=True))
    return rows[0]


if __name__ == "__main__":
    main()
