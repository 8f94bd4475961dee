"""Accuracy of the integer model against weight and state precision (post-training quantisation, loihi2).

    .venv/bin/python benchmarks/quant_sweep.py                          # the shipped SpikingSSM on sdigits
    .venv/bin/python benchmarks/quant_sweep.py --model examples/checkpoints/gsu_sdigits.pt --json out.json

For every weight width (state width at the target's) and every state width (weights at the target's) -- and, with
``--acc-bits``, every dendritic accumulator width (the target's 24 bits are an assumption) -- the model is
compiled with the default pipeline (512 training sequences to calibrate) and simulated on the held-out split;
the float accuracy is the reference. ``--weights ternary`` adds the ternary export. Prints one table per sweep.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from neurocompile.datasets import load_dataset  # noqa: E402
from neurocompile.frontend import load_model, trace  # noqa: E402
from neurocompile.ir.interpret import interpret  # noqa: E402
from neurocompile.passes._intrun import run_int  # noqa: E402
from neurocompile.passes.common import PrecisionWarning  # noqa: E402
from neurocompile.passes.pipeline import CompileOptions, compile_graph  # noqa: E402
from neurocompile.target import load_target  # noqa: E402


def run_point(graph, target, calib, test, **opts) -> dict:
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrecisionWarning)
        try:
            q, info = compile_graph(graph, target, calib, CompileOptions(**opts))
        except Exception as e:  # a precision error is a result of the sweep, not a crash
            return {**opts, "error": f"{type(e).__name__}: {e}"}
    pred = run_int(q, test.x).outputs[q.outputs[0]].argmax(-1)
    banks = {n: r["state_bits"] for n, r in q.meta["quant"]["nodes"].items() if "state_bits" in r}
    return {**opts, "accuracy": float(np.mean(pred == test.y)), "errors": len(info["errors"]),
            "state_bits_used": banks, "seconds": round(time.perf_counter() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", type=Path, help="checkpoint (repeatable; default: spikingssm)")
    p.add_argument("--target", default="loihi2")
    p.add_argument("--weight-bits", default="2,3,4,5,6,8", help="comma-separated weight widths")
    p.add_argument("--state-bits", default="8,10,12,16,20,24", help="comma-separated state widths")
    p.add_argument("--acc-bits", default="", help="comma-separated accumulator widths to sweep (e.g. 21,24,32)")
    p.add_argument("--ternary", action="store_true", help="also export with ternary mixing weights")
    p.add_argument("--limit", type=int, default=None, help="held-out sequences to simulate (default: all)")
    p.add_argument("--json", type=Path, default=None, help="write all results here")
    args = p.parse_args(argv)
    con = Console()
    target = load_target(args.target)
    models = args.model or [ROOT / "examples" / "checkpoints" / "spikingssm_sdigits.pt"]
    results = []
    for path in models:
        meta = path.with_suffix(".metrics.json")
        task = json.loads(meta.read_text()).get("task", "sdigits") if meta.exists() else "sdigits"
        graph = trace(load_model(path))
        calib = load_dataset(task, "train").x[:512]
        test = load_dataset(task, "test").limit(args.limit)
        float_acc = float(np.mean(interpret(graph, test.x).logits.argmax(-1) == test.y))
        rows = []
        for wb in [int(v) for v in args.weight_bits.split(",")]:
            rows.append(("weight_bits", wb, run_point(graph, target, calib, test, weight_bits=wb)))
        for sb in [int(v) for v in args.state_bits.split(",")]:
            rows.append(("state_bits", sb, run_point(graph, target, calib, test, state_bits=sb)))
        for ab in [int(v) for v in args.acc_bits.split(",") if v]:
            rows.append(("accumulator_bits", ab, run_point(graph, target, calib, test, accumulator_bits=ab)))
        if args.ternary:
            rows.append(("weights", "ternary", run_point(graph, target, calib, test, weights="ternary")))
        for sweep in ("weight_bits", "state_bits", "accumulator_bits", "weights"):
            sel = [r for r in rows if r[0] == sweep]
            if not sel:
                continue
            t = Table(title=f"{path.name} ({task}, {len(test)} held-out, {args.target}): float accuracy "
                            f"{100 * float_acc:.2f} % -- sweep of {sweep}")
            for col in (sweep, "integer accuracy", "delta (points)", "state bits chosen", "DRC errors"):
                t.add_column(col, justify="right")
            for _, v, r in sel:
                if "error" in r:
                    t.add_row(str(v), "refused", "", "", r["error"][:60])
                    continue
                t.add_row(str(v), f"{100 * r['accuracy']:.2f} %", f"{100 * (r['accuracy'] - float_acc):+.2f}",
                          ",".join(str(b) for b in r["state_bits_used"].values()), str(r["errors"]))
            con.print(t)
        results.append({"model": path.name, "task": task, "float_accuracy": float_acc,
                        "points": [dict(r, sweep=s, value=v) for s, v, r in rows]})
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
