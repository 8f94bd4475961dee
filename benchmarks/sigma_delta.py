"""Sigma-delta messaging on the shipped sdigits models: messages, energy per sample and accuracy, with and without
``export --insert sigma-delta=THETA`` (theta 0: lossless; theta > 0: the trade-off), and Lava bit-identity.

    PYTHONPATH=. python benchmarks/sigma_delta.py [--samples 100] [--lava 4] [--out DIR]

The theta = 0 artifact is exported with the option; larger thetas insert the same node into the exported integer
graph (what the option does after quantisation). Messages are every layer's graded messages and spikes.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from neurocompile.api import export
from neurocompile.artifact import load_artifact
from neurocompile.cost.energy import estimate
from neurocompile.datasets import load_dataset
from neurocompile.passes.pipeline import insert_nodes
from neurocompile.sim.engine import simulate
from neurocompile.target import load_target

ROOT = Path(__file__).resolve().parents[1]
THETAS = (0, 4, 16, 64, 256)


def _measure(graph, x, y, tgt) -> dict:
    r = simulate(graph, x, counters=True, target=tgt, backend="numpy")
    e = estimate(r.counts, tgt)
    sd = [lc for lc in r.counts.layers if lc.kind == "QSigmaDelta"]
    return {"acc": float(np.mean(r.predictions == y)), "pred": r.predictions,
            "msgs": (r.counts.total("graded_messages") + r.counts.total("spikes")) / len(x),
            "noc": r.counts.total("messages") / len(x), "sd_msgs": sum(lc.graded_messages for lc in sd) / len(x),
            "uj": e.energy_per_sample_j * 1e6, "dyn_uj": e.dynamic_energy_j * 1e6,
            "synops": (r.counts.total("synops_effective_mac") + r.counts.total("synops_effective_ac")) / len(x)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--lava", type=int, default=4, help="samples run on Lava per artifact (0: skip)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--models", default="*sdigits*", help="checkpoint name pattern in examples/checkpoints")
    a = ap.parse_args()
    out = a.out or Path(tempfile.mkdtemp(prefix="sigma-delta-"))
    tgt = load_target("loihi2")
    data = load_dataset("sdigits", split="test")
    x, y = data.x[:a.samples], data.y[:a.samples]
    print(f"{'model':24} {'theta':>5} {'acc':>6} {'msgs/sample':>12} {'NoC msgs':>10} {'synops':>10} "
          f"{'uJ/sample':>10} {'dyn uJ':>8} {'same preds':>10}")
    for ckpt in sorted((ROOT / "examples" / "checkpoints").glob(f"{a.models}.pt")):
        base = export(ckpt, "loihi2", out=out / f"{ckpt.stem}.base", force=True, console=False)
        with0 = export(ckpt, "loihi2", out=out / f"{ckpt.stem}.sd0", force=True, console=False,
                       insert={"sigma-delta": 0})
        g_base = load_artifact(base).int_graph
        m0 = _measure(g_base, x, y, tgt)
        print(f"{ckpt.stem:24} {'-':>5} {m0['acc']:6.3f} {m0['msgs']:12.0f} {m0['noc']:10.0f} {m0['synops']:10.0f} "
              f"{m0['uj']:10.3f} {m0['dyn_uj']:8.3f} {'':>10}")
        for theta in THETAS:
            g = load_artifact(with0).int_graph if theta == 0 else insert_nodes(load_artifact(base).int_graph,
                                                                              {"sigma-delta": theta})
            m = _measure(g, x, y, tgt)
            same = float(np.mean(m["pred"] == m0["pred"]))
            print(f"{'':24} {theta:5d} {m['acc']:6.3f} {m['msgs']:12.0f} {m['noc']:10.0f} {m['synops']:10.0f} "
                  f"{m['uj']:10.3f} {m['dyn_uj']:8.3f} {same:10.3f}   (sigma-delta messages {m['sd_msgs']:.0f})")
            if theta in (0, 16) and a.lava:
                from neurocompile.backends.lava import simulate_lava

                res = simulate_lava(g, x[:a.lava], batch=a.lava, check=False)
                cmp = res.lava_comparison
                print(f"{'':30} Lava on {a.lava} samples: {'bit-identical' if cmp.equal else cmp}"
                      f" ({cmp.values} values compared)")


if __name__ == "__main__":
    main()
