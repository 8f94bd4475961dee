"""Quantisation-aware fine-tuning of a trained checkpoint for a target; writes ``<out>.pt`` + ``<out>.metrics.json``.

    .venv/bin/python examples/qat.py --init examples/checkpoints/gsu_smnist_float.pt --task smnist \\
        --out examples/checkpoints/gsu_smnist.pt --epochs 2

Runs :func:`neurocompile.finetune.finetune` (fake quantisation of the weights, of the S4D's poles and readout in
the quantiser's mode basis and of the messages, with straight-through gradients; rounding half away from zero
as the quantiser does) and records metrics in the format of ``examples/train.py`` (float test accuracy with the
exact neurons, the command, the stage it started from). The integer accuracy is measured afterwards with
``neurocompile export`` + ``neurocompile simulate``; it is not part of this script.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from neurocompile.finetune import finetune  # noqa: E402
from neurocompile.models import load_checkpoint, save_checkpoint  # noqa: E402
from neurocompile.models.data import load_psmnist, load_sdigits, load_smnist  # noqa: E402
from neurocompile.models.training import evaluate, spike_rates  # noqa: E402
from neurocompile.target import load_target  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--init", type=Path, required=True, help="the trained (float) checkpoint to fine-tune")
    p.add_argument("--task", required=True, choices=["sdigits", "smnist", "psmnist"])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--target", default="loihi2")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--zero-skip", action="store_true",
                   help="set every S4D's skip D to 0 and keep it there (frozen) while fine-tuning: the quantiser puts "
                        "D and the readout C of a channel on one power-of-two grid, so a large |D| rounds small C "
                        "weights to 0")
    return p.parse_args(argv)


def load_task(task: str):
    if task == "sdigits":
        return load_sdigits("train"), load_sdigits("test")
    load = load_smnist if task == "smnist" else load_psmnist
    return load("train"), load("test")


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    try:
        return run(args, "examples/qat.py " + " ".join(argv))
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def run(args: argparse.Namespace, command: str) -> dict:
    torch.manual_seed(args.seed)
    model, init = load_checkpoint(args.init)
    init_metrics = dict(init.get("metrics") or {})
    (x_tr, y_tr), (x_te, y_te) = load_task(args.task)
    if args.zero_skip:
        from neurocompile.models.s4d import S4D

        for mod in model.modules():
            if isinstance(mod, S4D):
                with torch.no_grad():
                    mod.D.zero_()
                mod.D.requires_grad_(False)
    start = time.time()
    tuned, qat = finetune(model, load_target(args.target), x_tr, y_tr, epochs=args.epochs, lr=args.lr,
                          batch_size=args.batch_size, seed=args.seed, progress=False)
    seconds = time.time() - start
    family = tuned.config.family
    metrics = {
        "family": family,
        "task": args.task,
        "test_accuracy": evaluate(tuned, x_te, y_te, exact=True),
        "train_accuracy": evaluate(tuned, x_tr, y_tr, exact=True),
        "test_accuracy_train_form": evaluate(tuned, x_te, y_te, exact=False),
        "accuracy_note": "float model after QAT, eval mode, exact sequential neurons; integer accuracy: export + "
                         "simulate",
        "spike_rates": spike_rates(tuned, x_te),
        "train_form_spike_agreement": {},
        "n_params": tuned.num_parameters(),
        "n_train": len(x_tr),
        "n_test": len(x_te),
        "majority_rate": float(torch.bincount(y_te, minlength=10).max()) / len(y_te),
        "epochs": args.epochs,
        "seed": args.seed,
        "zero_skip": bool(args.zero_skip),
        "qat": qat["qat"],
        "train_seconds": round(seconds, 1),
        "config": tuned.config.to_dict(),
        "command": command,
        "init": {"path": str(args.init), "command": init_metrics.get("command"),
                 "test_accuracy": init_metrics.get("test_accuracy"),
                 "train_seconds": init_metrics.get("train_seconds"), "init": init_metrics.get("init")},
    }
    save_checkpoint(tuned, args.out, metrics)
    path = Path(args.out).with_suffix(".metrics.json")
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    print(f"QAT {family} on {args.task}: float test accuracy {metrics['test_accuracy']:.4f} (before "
          f"{init_metrics.get('test_accuracy')}), {seconds:.0f} s -> {args.out}, {path}", flush=True)
    return metrics


if __name__ == "__main__":
    main()
