"""Simulation speed per time step: neurocompile's integer simulator vs SANA-FE 2.2.9 on the same LIF networks.

Both simulators get the same network: an input layer of spike sources followed by fully connected LIF layers
(64-64-128-64 and 256-1024-1024-256 by default), the same random 8-bit integer weights and the same random input
spike trains. SANA-FE runs on its bundled Loihi architecture (``sanafe.load_loihi()``: one layer per core,
inputs on the cores' input somas); neurocompile runs the equivalent integer graph (QInput -> [QDense -> QLIF] per
layer, Loihi 2 widths), built directly from hardware nodes. Timing is wall-clock per step, best of ``--repeats``,
measured side by side in this run; set-up (SANA-FE's ``load``, numba's first compile) is excluded and printed.

neurocompile is timed four ways: a Session running the whole T-step input in one call (the compiled step,
batch 1), ``simulate()`` with counters and placement (what ``neurocompile simulate`` does, per-call overheads
included), a Session fed one step per call (token streaming), and ``simulate(backend='numpy')``.
SANA-FE is timed with its default timing model ('detailed', threads auto-detected) and with 'simple'.
This is a speed comparison only; the two neuron models are not bit-identical (SANA-FE's LIF is floating point).

    .venv/bin/python benchmarks/speed_vs_sanafe.py [--steps 64] [--rate 0.1] [--repeats 3] [--json out.json]

Needs ``pip install sanafe==2.2.9`` (the ``dev`` extra).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

NETWORKS = {"small": (64, 64, 128, 64), "large": (256, 1024, 1024, 256)}
GOALS = {"small": 10.0, "large": 50.0}
DECAY = 0.875  # voltage kept per step (both models)
THRESHOLD = 256  # firing threshold, in weight units


def network(sizes: tuple[int, ...], steps: int, rate: float, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """Random 8-bit weights [n_in, n_out] per layer and input spikes [steps, sizes[0]] (Bernoulli ``rate``)."""
    rng = np.random.default_rng(seed)
    ws = [rng.integers(-127, 128, (a, b)).astype(np.int64) for a, b in itertools.pairwise(sizes)]
    return ws, (rng.random((steps, sizes[0])) < rate).astype(np.int64)


def neurocompile_graph(sizes: tuple[int, ...], ws: list[np.ndarray]):
    from neurocompile.ir import hw
    from neurocompile.ir.graph import Graph

    g = Graph("lif_mlp")
    g.add("in", hw.QInput(size=sizes[0], out_scale=1.0, out_bits=2))  # 0/1 spikes
    g.inputs = ["in"]
    prev = "in"
    for i, w in enumerate(ws):
        n = w.shape[1]
        g.add(f"syn{i}", hw.QDense(weight=w.T.copy(), bias=np.zeros(n, np.int64), shift=np.zeros(n, np.int64),
                                   out_bits=24), prev)
        g.add(f"lif{i}", hw.QLIF(decay=round(DECAY * 4096), vth=np.full(n, THRESHOLD, np.int64), state_bits=24,
                                 compare=">"), f"syn{i}")
        prev = f"lif{i}"
    g.outputs = [prev]
    return g


def sanafe_chip(sizes: tuple[int, ...], ws: list[np.ndarray], spikes: np.ndarray):
    import sanafe

    arch = sanafe.load_loihi()
    net = sanafe.Network()
    inp = net.create_neuron_group("in", sizes[0], {})
    for i in range(sizes[0]):
        inp[i].set_attributes(soma_hw_name=f"loihi_inputs[{i}]",
                              model_attributes={"spikes": [int(v) for v in spikes[:, i]]})
    groups = [inp]
    for i, w in enumerate(ws):
        grp = net.create_neuron_group(f"lif{i}", w.shape[1], {"threshold": float(THRESHOLD),
                                                             "leak_decay": DECAY, "reset": 0.0})
        groups[-1].connect_neurons_dense(grp, {"w": w.astype(float).flatten()})
        groups.append(grp)
    cores = arch.cores()
    for c, grp in enumerate(groups):  # one layer per core (every layer here fits a 1024-neuron core)
        for nrn in grp:
            nrn.map_to_core(cores[c])
    chip = sanafe.SpikingChip(arch)
    t0 = time.perf_counter()
    chip.load(net)
    return chip, time.perf_counter() - t0


def best(fn, repeats: int) -> float:
    out = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out = min(out, time.perf_counter() - t0)
    return out


def bench(name: str, steps: int, rate: float, repeats: int) -> dict:
    from neurocompile import Session
    from neurocompile.sim.engine import simulate

    sizes = NETWORKS[name]
    ws, spikes = network(sizes, steps, rate)
    g = neurocompile_graph(sizes, ws)
    x = spikes[None].astype(np.float64)  # [1, T, n0]
    t0 = time.perf_counter()
    s = Session(g)
    s.run(x[0])  # the first call compiles (or loads numba's cache)
    setup_nc = time.perf_counter() - t0

    def chunk() -> None:
        s.reset()
        s.run(x[0])

    def stream() -> None:
        s.reset()
        for t in range(steps):
            s.step(x[0, t])
    nc_chunk = best(chunk, repeats) / steps
    nc_stream = best(stream, repeats) / steps
    nc_sim = best(lambda: simulate(g, x, target="loihi2"), repeats) / steps
    nc_numpy = best(lambda: simulate(g, x, target="loihi2", backend="numpy"), max(1, repeats // 2)) / steps
    res = simulate(g, x, counters=False)
    nc_spikes = sum(res.spikes.values())

    sf: dict[str, float] = {}
    sf_spikes = 0
    sf_setup = 0.0
    for model in ("detailed", "simple"):
        times = []
        for _ in range(repeats):
            chip, load_s = sanafe_chip(sizes, ws, spikes)  # fresh chip: SANA-FE's state runs on across sim() calls
            sf_setup = max(sf_setup, load_s)
            t0 = time.perf_counter()
            out = chip.sim(steps, timing_model=model)
            times.append(time.perf_counter() - t0)
            sf_spikes = int(out["neurons_fired"])
        sf[model] = min(times) / steps
    return {"network": "-".join(map(str, sizes)), "name": name, "steps": steps, "input_rate": rate,
            "neurocompile_chunk_s": nc_chunk, "neurocompile_stream_s": nc_stream, "neurocompile_simulate_s": nc_sim,
            "neurocompile_numpy_s": nc_numpy, "neurocompile_setup_s": setup_nc, "neurocompile_spikes": nc_spikes,
            "sanafe_detailed_s": sf["detailed"], "sanafe_simple_s": sf["simple"], "sanafe_load_s": sf_setup,
            "sanafe_neurons_fired": sf_spikes,
            "ratio_chunk": sf["detailed"] / nc_chunk, "ratio_stream": sf["detailed"] / nc_stream,
            "ratio_simulate": sf["detailed"] / nc_sim, "ratio_numpy": sf["detailed"] / nc_numpy,
            "ratio_chunk_vs_simple": sf["simple"] / nc_chunk, "goal": GOALS[name]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--rate", type=float, default=0.1, help="input spike probability per neuron and step")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    try:
        import sanafe  # noqa: F401
    except ImportError:
        print("SANA-FE is not installed: pip install sanafe==2.2.9 (the dev extra)")
        return 1
    rows = [bench(n, a.steps, a.rate, a.repeats) for n in a.networks]
    us = 1e6
    print(f"\nhost: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}; {a.steps} steps, input rate {a.rate}, best of {a.repeats}; times per step")
    head = (f"{'network':18s} {'SANA-FE':>10s} {'(simple)':>10s} {'nc chunk':>10s} {'ratio':>7s} {'nc step()':>10s} "
            f"{'ratio':>7s} {'simulate':>10s} {'ratio':>7s} {'numpy':>10s} {'ratio':>7s}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['network']:18s} {r['sanafe_detailed_s'] * us:8.1f}us {r['sanafe_simple_s'] * us:8.1f}us "
              f"{r['neurocompile_chunk_s'] * us:8.2f}us {r['ratio_chunk']:6.1f}x {r['neurocompile_stream_s'] * us:8.2f}us "
              f"{r['ratio_stream']:6.1f}x {r['neurocompile_simulate_s'] * us:8.2f}us {r['ratio_simulate']:6.1f}x "
              f"{r['neurocompile_numpy_s'] * us:8.1f}us {r['ratio_numpy']:6.1f}x")
    print("\nnc chunk: Session.run of the whole input (compiled step, batch 1); nc step(): one Session.step call per "
          "step; simulate: simulate(target='loihi2') with counters and placement; numpy: simulate(backend='numpy')")
    print("ratio: SANA-FE ('detailed', its default) time per step / neurocompile time per step")
    for r in rows:
        print(f"  {r['network']}: spikes neurocompile {r['neurocompile_spikes']}, SANA-FE neurons fired "
              f"{r['sanafe_neurons_fired']}; set-up (not timed) neurocompile {r['neurocompile_setup_s']:.2f} s "
              f"(numba compile or cache load), SANA-FE load {r['sanafe_load_s']:.2f} s; vs SANA-FE 'simple': "
              f"{r['ratio_chunk_vs_simple']:.1f}x")
        verdict = "met" if r["ratio_chunk"] >= r["goal"] else "NOT met"
        print(f"  goal >= {r['goal']:.0f}x per step (nc chunk): {verdict} ({r['ratio_chunk']:.1f}x)")
    if a.json is not None:
        a.json.write_text(json.dumps({"results": rows, "cpus": os.cpu_count()}, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
