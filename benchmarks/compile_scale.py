"""Export time and peak memory of real-size SpikingSSM models, with cores used against the lower bound.

Each configuration (H, N, layers, target) runs in a fresh child process, which builds a random-weight model with
the project's own model code, saves it with ``save_checkpoint``, exports it (calibrating on sdigits) and reports
its wall time and its own peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, which includes
torch and the model). A refusal (the model does not fit the target) is a result too: its time, rule, usage and
limit are printed. Cores used and the lower bounds come from the artifact's placement.json (or, when refused, from
``neurocompile check``'s report): ``lower bd`` counts the axons every placement needs (a neuron read by dense rows
that need k cores of memory needs k input and k output axons), ``simple`` counts one per neuron read on chip
(docs/mapping.md section 3). ``hop cost``: hop-weighted traffic of cores numbered in packing order on row-major
tiles > after the serpentine start and refinement. ``place s``: CPU seconds of placing the artifact's integer graph
again (after the peak memory was read), ``same``: whether that placement equals the stored placement.json.

    python benchmarks/compile_scale.py                 # H in {256, 512, 1024}, N = 64, on three targets
    python benchmarks/compile_scale.py --quick         # H = 256 and 512 on loihi2 only
    python benchmarks/compile_scale.py --config 512:6:loihi2 --config 1024:16:hala-point
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT = [(256, 4), (512, 6), (1024, 16)]
TARGETS = ["loihi2", "kapoho-point", "hala-point"]

CHILD = r"""
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
t_start = time.perf_counter()
import torch
from neurocompile.models import ModelConfig, SSMClassifier, save_checkpoint
H, N, L, target, work = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
torch.manual_seed(0)
model = SSMClassifier(ModelConfig(family="spikingssm", d_model=H, d_state=N, n_layers=L, n_classes=10))
ckpt = f"{work}/m{H}_{N}_{L}.pt"
save_checkpoint(model, ckpt, metrics={"task": "sdigits"})
del model
from neurocompile import api
from neurocompile.errors import NeurocompileError
out = {"H": H, "N": N, "layers": L, "target": target}
t0 = time.perf_counter()
try:
    art = api.export(ckpt, target, out=f"{work}/art_{H}_{L}_{target}", force=True, console=False)
    out["result"] = "exported"
    fit = json.loads((art / "placement.json").read_text())["fit"]
except NeurocompileError as e:
    out["result"] = "refused"
    out["message"] = str(e)
    fit = None
out["seconds"] = round(time.perf_counter() - t0, 2)
ru = resource.getrusage(resource.RUSAGE_SELF)
out["cpu_seconds"] = round(ru.ru_utime + ru.ru_stime, 2)  # whole child (imports, model building, export)
if fit is None:
    fit = api.check(ckpt, target, console=False)
out.update(cores=fit["cores_used"], placed=fit["placed"], lower_bound=fit["lower_bound"]["cores"],
           simple_bound=fit["lower_bound"].get("simple", {}).get("cores", fit["lower_bound"]["cores"]),
           mesh_cost=fit.get("mesh_cost", {}),
           findings=[f for f in fit["findings"] if f["severity"] == "error"][:3])
out["peak_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)
out["total_seconds"] = round(time.perf_counter() - t_start, 2)
if out["result"] == "exported":  # after the peak was read: placing the integer graph again, timed, same bytes?
    from neurocompile.artifact import load_artifact
    from neurocompile.mapping.placement import place
    a = load_artifact(art, verify_hashes=False)
    t1 = time.process_time()
    again = place(a.int_graph, a.target_spec).to_dict()
    out["place_cpu_s"] = round(time.process_time() - t1, 2)
    stored = json.loads((art / "placement.json").read_text())["placement"]
    out["same_placement"] = json.dumps(again, sort_keys=True) == json.dumps(stored, sort_keys=True)
print("RESULT " + json.dumps(out))
"""


def run(h: int, n: int, layers: int, target: str, work: str, timeout: float) -> dict:
    root = Path(__file__).resolve().parent.parent
    try:
        proc = subprocess.run([sys.executable, "-c", CHILD, str(h), str(n), str(layers), target, work],
                              capture_output=True, text=True, timeout=timeout, cwd=root, check=False)
    except subprocess.TimeoutExpired:
        return {"H": h, "N": n, "layers": layers, "target": target, "result": f"timeout {timeout:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"H": h, "N": n, "layers": layers, "target": target, "result": f"failed: {tail[0][:120]}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="H = 256 and 512 on loihi2 only")
    ap.add_argument("--config", action="append", default=[], help="H:layers:target (N = --modes)")
    ap.add_argument("--modes", type=int, default=64, help="d_state N (default 64)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per configuration")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = ap.parse_args()
    if args.config:
        configs = [(int(c.split(":")[0]), int(c.split(":")[1]), c.split(":")[2]) for c in args.config]
    elif args.quick:
        configs = [(h, layers, "loihi2") for h, layers in DEFAULT[:2]]
    else:
        configs = [(h, layers, t) for h, layers in DEFAULT for t in TARGETS]
    rows = []
    with tempfile.TemporaryDirectory() as work:
        print(f"{'H':>5} {'N':>3} {'L':>3} {'target':<13} {'result':<9} {'export s':>9} {'cpu s':>7} {'peak GB':>8} "
              f"{'cores':>6} {'lower bd':>8} {'ratio':>6} {'simple':>6} {'ratio':>6} {'hop cost':>17} {'place s':>7} "
              f"{'same':>5}  refusal",
              flush=True)
        for h, layers, t in configs:
            r = run(h, args.modes, layers, t, work, args.timeout)
            rows.append(r)
            ratio = f"{r['cores'] / r['lower_bound']:.2f}" if r.get("placed") else "-"
            sratio = f"{r['cores'] / r['simple_bound']:.2f}" if r.get("placed") else "-"
            mc = r.get("mesh_cost") or {}
            hop = f"{mc['row_major']:,}>{mc['refined']:,}" if mc.get("row_major") else "-"
            why = "; ".join(f"[{f['rule']}] {f['node'] or 'model'}: {f['usage']:,} > {f['limit']:,}"
                            for f in r.get("findings", []))
            print(f"{h:>5} {args.modes:>3} {layers:>3} {t:<13} {r['result'][:9]:<9} {r.get('seconds', '-'):>9} {r.get('cpu_seconds', '-'):>7} "
                  f"{r.get('peak_gb', '-'):>8} {r.get('cores', '-'):>6} {r.get('lower_bound', '-'):>8} {ratio:>6} "
                  f"{r.get('simple_bound', '-'):>6} {sratio:>6} {hop:>17} {r.get('place_cpu_s', '-'):>7} "
                  f"{str(r.get('same_placement', '-')):>5}  {why}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
