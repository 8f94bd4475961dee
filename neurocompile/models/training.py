"""Training and evaluation helpers for the reference models (used by examples/train.py and the tests)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from neurocompile.models.model import SSMClassifier

__all__ = ["TrainSettings", "param_groups", "train_model", "evaluate", "spike_rates", "train_form_agreement",
           "iterate_batches"]


@dataclass
class TrainSettings:
    """Optimiser settings: AdamW with a cosine schedule; the S4D's dt and A use ``ssm_lr`` and no weight decay."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-2
    ssm_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 20
    max_steps: int | None = None  # stop early (tests)
    grad_clip: float = 5.0
    seed: int = 0
    extra: dict = field(default_factory=dict)


def param_groups(model: SSMClassifier, settings: TrainSettings) -> list[dict]:
    """S4D dynamics (log_dt, log_A_real, A_imag) get the small SSM learning rate and no weight decay (as in S4);
    thresholds, refractory magnitudes, biases and norms get no weight decay either."""
    ssm, no_decay, decay = [], [], []
    for name, p in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("log_dt", "log_A_real", "A_imag"):
            ssm.append(p)
        elif p.dim() < 2 or leaf in ("ln_vth", "ln_rho", "D", "b", "c") or ".norm." in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": ssm, "lr": settings.ssm_lr, "weight_decay": 0.0},
        {"params": no_decay, "lr": settings.lr, "weight_decay": 0.0},
        {"params": decay, "lr": settings.lr, "weight_decay": settings.weight_decay},
    ]


def iterate_batches(n: int, batch_size: int, generator: torch.Generator | None = None):
    """Index batches over n items, shuffled with ``generator`` (ordered when None)."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def train_model(
    model: SSMClassifier,
    x: torch.Tensor,
    y: torch.Tensor,
    settings: TrainSettings,
    on_step: Callable[[int, int, float, float], None] | None = None,
) -> list[dict]:
    """Train in place with the configured (training-time) neuron form; returns per-epoch ``{'loss', 'acc'}``.

    ``on_step(epoch, step, loss, acc)`` is called after every optimiser step (progress display).
    """
    gen = torch.Generator().manual_seed(settings.seed)
    steps_per_epoch = math.ceil(len(x) / settings.batch_size)
    total = steps_per_epoch * settings.epochs
    if settings.max_steps is not None:
        total = min(total, settings.max_steps)
    groups = param_groups(model, settings)
    opt = torch.optim.AdamW(groups)
    base = [g["lr"] for g in groups]

    def lr_factor(step: int) -> float:
        if step < settings.warmup_steps:
            return (step + 1) / settings.warmup_steps
        progress = (step - settings.warmup_steps) / max(1, total - settings.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    history = []
    step = 0
    model.train()
    for epoch in range(settings.epochs):
        loss_sum, correct, seen = 0.0, 0, 0
        for idx in iterate_batches(len(x), settings.batch_size, gen):
            if step >= total:
                break
            for g, lr in zip(opt.param_groups, base):
                g["lr"] = lr * lr_factor(step)
            logits = model(x[idx])
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if settings.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
            opt.step()
            step += 1
            batch_correct = int((logits.argmax(-1) == y[idx]).sum())
            loss_sum += loss.item() * len(idx)
            correct += batch_correct
            seen += len(idx)
            if on_step is not None:
                on_step(epoch, step, loss.item(), batch_correct / len(idx))
        if seen:
            history.append({"epoch": epoch, "loss": loss_sum / seen, "acc": correct / seen})
        if step >= total:
            break
    model.eval()
    return history


@torch.no_grad()
def evaluate(model: SSMClassifier, x: torch.Tensor, y: torch.Tensor, exact: bool = True,
             batch_size: int = 256) -> float:
    """Accuracy in eval mode; ``exact=True`` runs the exact sequential neurons, False the training-time form."""
    was_training = model.training
    model.eval()
    correct = 0
    for idx in iterate_batches(len(x), batch_size):
        correct += int((model(x[idx], exact=exact).argmax(-1) == y[idx]).sum())
    model.train(was_training)
    return correct / len(x)


@torch.no_grad()
def spike_rates(model: SSMClassifier, x: torch.Tensor, batch_size: int = 256) -> dict[str, float]:
    """Per block: mean fraction of non-zero entries of ``spikes`` (exact neurons, eval mode)."""
    was_training = model.training
    model.eval()
    sums = [0.0] * len(model.blocks)
    count = 0
    for idx in iterate_batches(len(x), batch_size):
        _, trace = model(x[idx], return_trace=True, exact=True)
        for i in range(len(model.blocks)):
            sums[i] += float((trace[f"block{i}.spikes"] != 0).double().sum())
        count += trace["block0.spikes"].numel()
    model.train(was_training)
    return {f"block{i}": s / count for i, s in enumerate(sums)}


@torch.no_grad()
def train_form_agreement(model: SSMClassifier, x: torch.Tensor, batch_size: int = 256) -> dict[str, float]:
    """Per block: agreement of the training-time parallel neuron (SDN / PMBC) with the exact one, both fed the
    S4D outputs of the exact model. Empty for families without a parallel form in use."""
    if model.config.neuron_mode == "exact":
        return {}
    was_training = model.training
    model.eval()
    same = [0.0] * len(model.blocks)
    count = 0
    for idx in iterate_batches(len(x), batch_size):
        _, trace = model(x[idx], return_trace=True, exact=True)
        for i, block in enumerate(model.blocks):
            parallel = block.neuron(trace[f"block{i}.s4d"], exact=False)
            same[i] += float((parallel == trace[f"block{i}.spikes"]).double().sum())
        count += trace["block0.spikes"].numel()
    model.train(was_training)
    return {f"block{i}": s / count for i, s in enumerate(same)}
