"""Quantisation-aware fine-tuning (QAT) of a reference model for a target's integer precision.

``finetune(model, target, x, y)`` trains a copy of ``model`` for a few epochs with the integer model's main
error sources simulated in the forward pass and straight-through gradients (the rounding is treated as the
identity in the backward pass):

- dense weights (encoder, 1x1 convolutions, decoder, GSU's W): per-output-channel symmetric fake quantisation
  to ``weight_bits`` mantissas, step max|W_o| / (2^(weight_bits-1) - 1), as the quantiser's per-channel shifts;
- S4D readout C: fake quantisation in the basis the quantiser uses (each mode's state scaled to the same peak,
  estimated as |dB| (1 - |dA|^T) / (1 - |dA|)), so that the step of mode m is max_m' |C_m' P_m'| / (wmax P_m);
- S4D decay-rotations: dA rounded to ``decay_bits`` fractional bits (the convolution kernel is rebuilt from the
  rounded poles);
- the residual stream and the S4D output (messages): fake quantisation to the quantiser's widths with a running
  max scale.

The returned model is the fine-tuned float model (parametrisations removed, float weights kept): export it
with the compiler as usual; its weights now sit where rounding costs little. Returns ``(model, metrics)``.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from neurocompile.errors import NeurocompileError
from neurocompile.passes.common import CompileOptions, Precision

__all__ = ["finetune", "fake_quant", "QATConfig"]


def fake_quant(w: torch.Tensor, step: torch.Tensor, lim: int) -> torch.Tensor:
    """round(w / step) * step clipped to +-lim steps, with a straight-through gradient."""
    q = torch.clamp(torch.round(w / step), -lim, lim) * step
    return w + (q - w).detach()


class _RowQuant(nn.Module):
    """Per-output-channel fake quantisation of a weight whose output channels run along ``dim``."""

    def __init__(self, bits: int, dim: int = 0) -> None:
        super().__init__()
        self.lim, self.dim = (1 << (bits - 1)) - 1, dim

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        dims = [d for d in range(w.dim()) if d != self.dim]
        peak = w.detach().abs().amax(dim=dims, keepdim=True).clamp_min(1e-12)
        return fake_quant(w, peak / self.lim, self.lim)


class _ReadoutQuant(nn.Module):
    """Fake quantisation of an S4D's C ([H, M, 2] real view) in the state-normalised basis."""

    def __init__(self, s4d: nn.Module, bits: int, steps: int) -> None:
        super().__init__()
        self.lim, self.steps = (1 << (bits - 1)) - 1, steps
        self._s4d = [s4d]  # not a submodule (no cycle in the module tree)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        s4d = self._s4d[0]
        with torch.no_grad():
            dA, dB = s4d.discretize()
            r = dA.abs().clamp(max=1 - 1e-9)
            peak = dB.abs() * (1 - r ** self.steps) / (1 - r)  # [H, M] state peak per unit input
            if c.dim() == 4:  # bidirectional [2, H, M, 2]
                peak = peak.unsqueeze(0)
            contrib = c.abs().amax(-1) * peak  # |C_m| P_m
            step = contrib.amax(-1, keepdim=True).clamp_min(1e-12) / (self.lim * peak.clamp_min(1e-30))
        return fake_quant(c, step.unsqueeze(-1), 1 << 30)


class QATConfig:
    """The widths QAT simulates, from the target precision (with overrides)."""

    def __init__(self, prec: Precision) -> None:
        from neurocompile.passes.qmath import bits_for

        self.weight_bits = prec.weight_bits
        self.decay_bits = prec.decay_bits
        wmax = prec.wmax
        self.residual_bits = min(prec.message_bits if prec.message_bits > 2 else prec.state_bits,
                                 bits_for(prec.acc_limit / (2 * wmax)))
        self.ssm_out_bits = prec.state_bits - 2


def _patch_kernel(s4d: nn.Module, decay_bits: int) -> None:
    """Make ``s4d.kernel`` use poles rounded to ``decay_bits`` (straight-through)."""
    one = float(1 << decay_bits)

    def kernel(L: int, _s=s4d) -> torch.Tensor:
        dA, dB = _s.discretize()
        re = dA.real + (torch.round(dA.real * one) / one - dA.real).detach()
        im = dA.imag + (torch.round(dA.imag * one) / one - dA.imag).detach()
        dAq = torch.complex(re, im)
        CB = _s._complex_C() * dB
        steps = torch.arange(L, device=dA.device, dtype=dA.real.dtype)
        vander = torch.exp(torch.log(dAq).unsqueeze(-1) * steps)
        return 2.0 * torch.einsum("...hn,hnl->...hl", CB, vander).real

    s4d.kernel = kernel  # instance attribute: shadows the method for this module only


class _ActQuant:
    """Forward hook fake-quantising a module's output (or the first element of a tuple) with a running max."""

    def __init__(self, bits: int, momentum: float = 0.9) -> None:
        self.lim, self.m, self.peak = (1 << (bits - 1)) - 1, momentum, None

    def __call__(self, module: nn.Module, inputs: Any, output: Any) -> Any:
        y = output[0] if isinstance(output, tuple) else output
        cur = float(y.detach().abs().max())
        self.peak = cur if self.peak is None else max(cur, self.m * self.peak + (1 - self.m) * cur)
        yq = fake_quant(y, torch.tensor(max(self.peak, 1e-12) / self.lim, dtype=y.dtype), self.lim)
        return (yq,) + tuple(output[1:]) if isinstance(output, tuple) else yq


def _instrument(model: nn.Module, cfg: QATConfig, steps: int) -> list[Any]:
    """Register the fake quantisers; returns the hook handles."""
    from neurocompile.models.mixing import GSU
    from neurocompile.models.s4d import S4D

    for mod in model.modules():
        if isinstance(mod, (nn.Linear, nn.Conv1d)):
            parametrize.register_parametrization(mod, "weight", _RowQuant(cfg.weight_bits, 0))
        elif isinstance(mod, GSU):
            parametrize.register_parametrization(mod, "W", _RowQuant(cfg.weight_bits, 1))
        elif isinstance(mod, S4D):
            parametrize.register_parametrization(mod, "C", _ReadoutQuant(mod, cfg.weight_bits, steps))
            _patch_kernel(mod, cfg.decay_bits)
    handles = []
    if hasattr(model, "encoder") and hasattr(model, "blocks"):
        handles.append(model.encoder.register_forward_hook(_ActQuant(cfg.residual_bits)))
        for blk in model.blocks:
            handles.append(blk.register_forward_hook(_ActQuant(cfg.residual_bits)))
            handles.append(blk.s4d.register_forward_hook(_ActQuant(cfg.ssm_out_bits)))
    return handles


def _strip(model: nn.Module, handles: list[Any]) -> None:
    for h in handles:
        h.remove()
    for mod in model.modules():
        if parametrize.is_parametrized(mod):
            for name in list(mod.parametrizations.keys()):
                parametrize.remove_parametrizations(mod, name, leave_parametrized=False)
        if "kernel" in vars(mod):
            del mod.kernel


def _as_tensors(x: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
    xt = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    yt = y if isinstance(y, torch.Tensor) else torch.as_tensor(np.asarray(y))
    if xt.dtype.is_floating_point:
        xt = xt.float()
    if xt.shape[0] != yt.shape[0]:
        raise NeurocompileError(f"finetune: x has {xt.shape[0]} sequences but y has {yt.shape[0]} labels")
    return xt, yt.long().reshape(-1)


def finetune(model: nn.Module, target: Any = None, x: Any = None, y: Any = None, epochs: int = 3,
             weight_bits: int | None = None, lr: float = 1e-3, batch_size: int = 64, seed: int = 0,
             progress: bool = True, decay_bits: int | None = None, state_bits: int | None = None
             ) -> tuple[nn.Module, dict[str, Any]]:
    """Quantisation-aware fine-tuning of ``model`` (an SSMClassifier) on ``x``, ``y`` for ``target``'s precision.

    ``weight_bits`` / ``decay_bits`` / ``state_bits`` override the target's (compile with the same overrides).
    Returns ``(fine-tuned copy in eval mode, metrics)``; the input model is not modified.
    """
    if x is None or y is None:
        raise NeurocompileError("finetune needs training data x and labels y")
    if epochs < 1:
        raise NeurocompileError(f"finetune: epochs must be >= 1, got {epochs}")
    prec = Precision.from_target(target, CompileOptions(weight_bits=weight_bits, decay_bits=decay_bits,
                                                        state_bits=state_bits))
    cfg = QATConfig(prec)
    xt, yt = _as_tensors(x, y)
    tuned = copy.deepcopy(model)
    handles = _instrument(tuned, cfg, int(xt.shape[1]))
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW([p for p in tuned.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    n = int(xt.shape[0])
    batches = math.ceil(n / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * batches)
    history = []
    bar = None
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(TextColumn("QAT {task.description}"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("loss {task.fields[loss]:.3f}"), TimeRemainingColumn(), transient=True)
        bar.start()
        task = bar.add_task(f"{prec.weight_bits}-bit weights", total=epochs * batches, loss=float("nan"))
    try:
        for ep in range(epochs):
            tuned.train()
            perm = torch.randperm(n, generator=gen)
            tot, correct = 0.0, 0
            for i in range(0, n, batch_size):
                idx = perm[i:i + batch_size]
                logits = tuned(xt[idx])
                loss = nn.functional.cross_entropy(logits, yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                tot += float(loss) * len(idx)
                correct += int((logits.argmax(-1) == yt[idx]).sum())
                if bar is not None:
                    bar.update(task, advance=1, loss=float(loss))
            history.append({"epoch": ep, "loss": tot / n, "train_accuracy": correct / n})
    finally:
        if bar is not None:
            bar.stop()
        _strip(tuned, handles)
    tuned.eval()
    metrics = {"qat": {"epochs": epochs, "weight_bits": prec.weight_bits, "decay_bits": prec.decay_bits,
                       "lr": lr, "batch_size": batch_size, "seed": seed, "history": history,
                       "target": prec.target_name}}
    return tuned, metrics
