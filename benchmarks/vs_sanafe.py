"""neurocompile against SANA-FE 2.2.9 (Boyle et al., IEEE TCAD 2025) on the same spiking networks.

Each network is written as a NIR graph (integer weights; LIF with hard, soft or no reset), imported exactly with
``from_nir_exact`` (Loihi's one-step synaptic delay), placed on loihi1 with the mapping given, and simulated by
both tools on the same input spikes with the same placement (SANA-FE's input neurons sit on a free core of
tile 0, where neurocompile's host port is). The script checks that the spike rasters are identical and prints,
side by side: dynamic energy per category (synapse, soma, network) and in total, latency per step (neurocompile
analytical and cycle mode against SANA-FE's detailed model) and simulation speed.

    python benchmarks/vs_sanafe.py                 # all networks
    python benchmarks/vs_sanafe.py --nets dense-hard --steps 50

Goal (docs/energy.md): every energy category within 2 %, cycle-mode mean latency within 10 %.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurocompile.cost.energy import estimate
from neurocompile.cost.timing import cycle_timing
from neurocompile.interop.nir_exact import from_nir_exact
from neurocompile.mapping.placement_modes import place_as, tiles_used
from neurocompile.sim.engine import simulate
from neurocompile.target import load_target

DT = 1e-3
RETENTION = 3840  # 12-bit leak retention (15/16 per step)


@dataclass
class Net:
    """A feed-forward LIF network: layer sizes, reset, weight range, density, input rate, mapping."""

    name: str
    sizes: list[int]
    reset: str = "zero"
    wmax: int = 6
    wmin: int = -3
    density: float = 1.0
    rate: float = 0.15
    threshold: float = 12.0
    mapping: Any = "packed"  # 'packed', 'layer-per-core' or {layer index: core}
    seed: int = 0
    extra: dict = field(default_factory=dict)


NETS = [
    Net("dense-hard", [64, 64, 128, 64], reset="zero", wmin=-4, wmax=5, threshold=20.0),
    Net("dense-soft", [64, 64, 128, 64], reset="subtract", wmin=-4, wmax=5, threshold=20.0),
    Net("dense-none", [64, 64, 128, 64], reset="none", wmin=-5, wmax=4, threshold=40.0),
    Net("large", [256, 1024, 1024, 256], wmin=-4, wmax=4, threshold=40.0, rate=0.1, mapping="layer-per-core"),
    Net("multi-tile", [64, 64, 128, 64], wmin=-4, wmax=5, threshold=20.0, mapping={0: 9, 1: 38, 2: 127}),
    Net("sparse", [256, 256, 256, 128], density=0.1, wmin=-4, wmax=8, threshold=12.0, mapping="layer-per-core"),
]


def make_nir(net: Net) -> tuple[Any, list[np.ndarray]]:
    """NIR graph of ``net`` (snnTorch's convention: dt R / tau = 1) and its integer weight matrices."""
    import nir

    rng = np.random.default_rng(net.seed)
    nodes: dict[str, Any] = {"input": nir.Input(input_type=np.array([net.sizes[0]]))}
    edges, weights, prev = [], [], "input"
    tau = DT * 4096 / (4096 - RETENTION)
    for i, (a, b) in enumerate(zip(net.sizes[:-1], net.sizes[1:])):
        w = rng.integers(net.wmin, net.wmax + 1, size=(b, a))
        w[w == 0] = 1
        if net.density < 1:
            w = w * (rng.random((b, a)) < net.density)
        weights.append(w)
        nodes[f"fc{i}"] = nir.Linear(weight=w.astype(np.float32))
        nodes[f"lif{i}"] = nir.LIF(tau=np.full(b, tau), r=np.full(b, tau / DT), v_leak=np.zeros(b),
                                   v_threshold=np.full(b, net.threshold), v_reset=np.zeros(b),
                                   metadata={"reset": net.reset})
        edges += [(prev, f"fc{i}"), (f"fc{i}", f"lif{i}")]
        prev = f"lif{i}"
    nodes["output"] = nir.Output(output_type=np.array([net.sizes[-1]]))
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": DT}), weights


def mapping_arg(net: Net, tmp: str) -> str:
    if isinstance(net.mapping, dict):
        path = f"{tmp}/placement-{net.name}.json"
        with open(path, "w") as f:
            json.dump({f"lif{i}": c for i, c in net.mapping.items()}, f)
        return path
    return net.mapping


def run_neurocompile(net: Net, x: np.ndarray, tmp: str) -> dict[str, Any]:
    ng, _ = make_nir(net)
    g = from_nir_exact(ng, synaptic_delay=1)
    tgt = load_target("loihi1")
    p = place_as(g, tgt, mapping_arg(net, tmp))
    t0 = time.perf_counter()
    r = simulate(g, x[None].astype(np.float32), placement=p, record=True)
    sim_s = time.perf_counter() - t0
    rep = estimate(r.counts, tgt, tiles_used=tiles_used(p))
    t1 = time.perf_counter()
    cyc = cycle_timing(g, p, r.trace, tgt)
    cyc_s = time.perf_counter() - t1
    spikes = {f"lif{i}": r.trace[f"lif{i}"][0] != 0 for i in range(len(net.sizes) - 1)}
    return {"graph": g, "placement": p, "spikes": spikes, "energy": rep.categories_j, "total": rep.dynamic_energy_j,
            "latency_ns": rep.latency_per_step_s * 1e9, "cycle": cyc, "sim_s": sim_s, "cycle_s": cyc_s}


def sanafe_core(p: Any, core: int) -> int:
    """SANA-FE's id of the core at the same mesh position: SANA-FE numbers tiles column-major (x = id // height),
    neurocompile row-major."""
    cpc, cpt, mx, my = p.mesh
    _, x, y = p.core_xy(core)
    return (x * my + y) * cpt + core % cpt


def run_sanafe(net: Net, x: np.ndarray, weights: list[np.ndarray], p: Any, g: Any) -> dict[str, Any]:
    import sanafe

    arch = sanafe.load_loihi()
    cores = arch.cores()
    snn = sanafe.Network()
    steps = x.shape[0]
    used = {c.core for c in p.cores}
    free0 = [c for c in range(4) if c not in used]
    in_core = free0[0] if free0 else 0
    inp = snn.create_neuron_group("input", net.sizes[0], {})
    for i, n in enumerate(inp.neurons):
        n.set_attributes(soma_hw_name=f"loihi_inputs[{i}]", model_attributes={"spikes": [bool(v) for v in x[:, i]]})
        n.map_to_core(cores[in_core])
    reset = {"zero": "hard", "subtract": "soft", "none": "none"}[net.reset]
    prev = inp
    for i, w in enumerate(weights):
        fmt = "loihi_sparse_synapse" if np.count_nonzero(w) < 0.5 * w.size else "loihi_dense_synapse"
        grp = snn.create_neuron_group(f"lif{i}", w.shape[0], {"threshold": float(net.threshold), "reset": 0.0,
                                                               "reset_mode": reset,
                                                               "leak_decay": RETENTION / 4096.0},
                                      default_synapse_hw_name=fmt, soma_hw_name="loihi_lif", log_spikes=True)
        post, pre = np.nonzero(w)
        prev.connect_neurons_sparse(grp, {"weight": [float(v) for v in w[post, pre]]},
                                    list(zip(pre.tolist(), post.tolist())))
        unit_core = p.unit_core[f"lif{i}"]
        for j, n in enumerate(grp.neurons):
            n.map_to_core(cores[sanafe_core(p, int(unit_core[j]))])
        prev = grp
    chip = sanafe.SpikingChip(arch)
    chip.load(snn)
    t0 = time.perf_counter()
    res = chip.sim(steps, timing_model="detailed", spike_trace=True, perf_trace=True)
    sim_s = time.perf_counter() - t0
    spikes = {f"lif{i}": np.zeros((steps, w.shape[0]), bool) for i, w in enumerate(weights)}
    for t, fired in enumerate(res["spike_trace"]):
        for nm in fired:
            grp_name, idx = str(nm).rsplit(".", 1)
            if grp_name in spikes:
                spikes[grp_name][t, int(idx)] = True
    e = res["energy"]
    per_step = np.asarray(res["perf_trace"]["sim_time"], np.float64) * 1e9
    return {"spikes": spikes, "energy": {"synapse": e["synapse"], "soma": e["soma"] + e["dendrite"],
                                         "network": e["network"]},
            "total": e["total"], "latency_ns": float(per_step.mean()), "p95_ns": float(np.percentile(per_step, 95)),
            "per_step_ns": per_step,
            "sim_s": sim_s}


def _pct(a: float, b: float) -> str:
    return f"{100 * (a - b) / b:+.2f} %" if b else ("0" if a == 0 else "inf")


def compare(net: Net, steps: int, tmp: str, quiet: bool = False) -> dict[str, Any]:
    """Run one network in both tools; returns the side-by-side numbers and the checks."""
    rng = np.random.default_rng(100 + net.seed)
    x = (rng.random((steps, net.sizes[0])) < net.rate).astype(np.int64)
    ng, weights = make_nir(net)
    nc = run_neurocompile(net, x, tmp)
    sf = run_sanafe(net, x, weights, nc["placement"], nc["graph"])
    same = all(np.array_equal(nc["spikes"][k], sf["spikes"][k]) for k in sf["spikes"])
    n_spikes = int(sum(v.sum() for v in sf["spikes"].values()))
    rows = {k: (nc["energy"][k], sf["energy"][k]) for k in ("synapse", "soma", "network")}
    rows["total"] = (nc["total"], sf["total"])
    err = {k: abs(a - b) / b if b else abs(a) for k, (a, b) in rows.items()}
    lat_err = abs(nc["cycle"]["mean_ns"] - sf["latency_ns"]) / sf["latency_ns"]
    out = {"net": net.name, "spikes_identical": same, "spikes": n_spikes, "energy": rows, "energy_err": err,
           "latency": {"analytical": nc["latency_ns"], "cycle": nc["cycle"]["mean_ns"],
                       "cycle_p95": nc["cycle"]["p95_ns"], "sanafe": sf["latency_ns"], "sanafe_p95": sf["p95_ns"]},
           "latency_err_cycle": lat_err, "cores": nc["placement"].cores_used, "tiles": nc["cycle"]["tiles_used"],
           "speed_s": {"neurocompile_sim": nc["sim_s"], "neurocompile_cycle": nc["cycle_s"], "sanafe": sf["sim_s"]}}
    if not quiet:
        print(f"\n== {net.name}: sizes {net.sizes}, reset {net.reset}, {out['cores']} cores / {out['tiles']} tiles, "
              f"{steps} steps; spikes identical: {same} ({n_spikes} spikes)")
        print(f"  {'energy (nJ)':<12}{'neurocompile':>14}{'SANA-FE':>14}{'diff':>11}")
        for k, (a, b) in rows.items():
            print(f"  {k:<12}{a * 1e9:>14.3f}{b * 1e9:>14.3f}{_pct(a, b):>11}")
        lt = out["latency"]
        print(f"  latency/step: analytical {lt['analytical']:.1f} ns ({_pct(lt['analytical'], lt['sanafe'])}), "
              f"cycle {lt['cycle']:.1f} ns ({_pct(lt['cycle'], lt['sanafe'])}), SANA-FE detailed {lt['sanafe']:.1f} ns;"
              f" p95 cycle {lt['cycle_p95']:.1f} / SANA-FE {lt['sanafe_p95']:.1f} ns")
        sp = out["speed_s"]
        print(f"  wall time: neurocompile sim {sp['neurocompile_sim'] * 1e3:.1f} ms + cycle schedule "
              f"{sp['neurocompile_cycle'] * 1e3:.1f} ms; SANA-FE {sp['sanafe'] * 1e3:.1f} ms")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", nargs="*", default=[n.name for n in NETS], help="networks to run")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--json", help="write the results as JSON here")
    args = ap.parse_args(argv)
    import tempfile

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for net in NETS:
            if net.name in args.nets:
                results.append(compare(net, args.steps, tmp))
    ok = all(r["spikes_identical"] and max(r["energy_err"].values()) <= 0.02 and r["latency_err_cycle"] <= 0.10
             for r in results)
    print(f"\nall within goal (spikes identical, energy <= 2 %, cycle latency <= 10 %): {ok}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{k: v for k, v in r.items()} for r in results], f, indent=1, default=float)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
