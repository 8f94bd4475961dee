"""Quantisation-aware fine-tuning (QAT) of a reference model for a target's integer precision.

``finetune(model, target, x, y)`` trains a copy of ``model`` for a few epochs with the integer model's main
error sources simulated in the forward pass and straight-through gradients (the rounding is treated as the
identity in the backward pass):

- dense weights (encoder, 1x1 convolutions, decoder, GSU's W): per-output-channel symmetric fake quantisation
  to ``weight_bits`` mantissas on the quantiser's grid: with power-of-two activation scales (the default
  ``pow2_scales``) the step of channel o is exactly 2^ceil(log2(max|W_o| / (2^(weight_bits-1) - 1)));
  the bias of a layer fed by spikes (the GLU's convolution) lies on the same grid;
- S4D: the quantiser's SSM layer reproduced exactly (:class:`_S4DQuant`): poles rounded to ``decay_bits``,
  readout weights C and D quantised on the quantiser's per-channel grid in its per-mode state basis (which
  depends on each mode's calibrated peak state, re-measured at the start of every epoch);
- the residual stream and the S4D output (messages): fake quantisation to the quantiser's widths with a running
  max scale.

With ``weights='ternary'|'binary'`` the mixing layers (the GLU's convolution, GSU's W) are instead trained as
alpha_o t_o (exactly what the binarize pass computes), the other layers as above.

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
from neurocompile.fixedpoint import TERNARY_CUT, limit, round_half_away_like
from neurocompile.passes.common import CompileOptions, Precision

__all__ = ["finetune", "fake_quant", "QATConfig"]


def fake_quant(w: torch.Tensor, step: torch.Tensor, lim: int) -> torch.Tensor:
    """round_half_away(w / step) * step clipped to +-lim steps, with a straight-through gradient."""
    q = torch.clamp(round_half_away_like(w / step), -lim, lim) * step
    return w + (q - w).detach()


def pow2_step(peak: torch.Tensor, lim: int) -> torch.Tensor:
    """The quantiser's per-channel weight grid: 2^ceil(log2(peak / lim)) (power-of-two activation scales)."""
    return torch.exp2(torch.ceil(torch.log2(peak.clamp_min(1e-30) / lim)))


class _RowQuant(nn.Module):
    """Per-output-channel fake quantisation of a weight whose output channels run along ``dim``, on the
    quantiser's grid (a power-of-two step per channel)."""

    def __init__(self, bits: int, dim: int = 0) -> None:
        super().__init__()
        self.lim, self.dim = limit(bits), dim

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        dims = [d for d in range(w.dim()) if d != self.dim]
        peak = w.detach().abs().amax(dim=dims, keepdim=True)
        return fake_quant(w, pow2_step(peak, self.lim), self.lim)


class _TernaryQuant(nn.Module):
    """``weights='ternary'|'binary'``: alpha_o t_o per output channel (exactly binarize.ternarize_rows)."""

    def __init__(self, binary: bool, dim: int = 0) -> None:
        super().__init__()
        self.binary, self.dim = binary, dim

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        rows = w.movedim(self.dim, 0).reshape(w.shape[self.dim], -1)
        mag = rows.detach().abs()
        if self.binary:
            t = torch.where(rows.detach() >= 0, 1.0, -1.0)
            alpha = mag.mean(1, keepdim=True)
        else:
            keep = (mag > TERNARY_CUT * mag.mean(1, keepdim=True)).to(w.dtype)
            t = torch.sign(rows.detach()) * keep
            alpha = (mag * keep).sum(1, keepdim=True) / keep.sum(1, keepdim=True).clamp_min(1)
        q = (alpha * t).reshape(w.movedim(self.dim, 0).shape).movedim(0, self.dim)
        return w + (q - w).detach()


class _BiasQuant(nn.Module):
    """Bias of a layer fed by spikes (input scale 1): the quantiser puts it on its weight row's grid."""

    def __init__(self, layer: nn.Module, bits: int) -> None:
        super().__init__()
        self.lim = limit(bits)
        self._layer = [layer]

    def forward(self, b: torch.Tensor) -> torch.Tensor:
        w = self._layer[0].weight.detach()
        peak = w.abs().reshape(w.shape[0], -1).amax(-1)
        return fake_quant(b, pow2_step(peak, self.lim), 1 << 30)


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


def _patch_gsu(gsu: nn.Module, quant: nn.Module) -> None:
    """GSU: the real-weight product Ter(y) W uses the fake-quantised W; Ter(W) stays the ternarisation of the
    float W (the compiler traces it from the float W)."""
    import torch.nn.functional as F

    def forward(y: torch.Tensor, ter_y: torch.Tensor | None = None, _g=gsu) -> torch.Tensor:
        if ter_y is None:
            ter_y = _g.ternary_input(y)
        return F.gelu((ter_y @ quant(_g.W) + _g.b) * (y @ _g.ternary_weight() + _g.c))

    gsu.forward = forward  # instance attribute: shadows the method for this module only


class _S4DQuant:
    """The quantiser's SSM layer, emulated on an S4D module (its forward is replaced while fine-tuning).

    - poles: dA rounded to ``decay_bits`` fractional bits (the convolution kernel is rebuilt from them);
    - readout: the quantiser gives mode m the exact integer input coefficient b'_m (qmath / ssmquant
      ``mode_basis``: b' proportional to |dB_m| / peak_m, the largest in (wmax/2, wmax]) and quantises
      z_m = 2 C_m dB_m / b'_m (real and imaginary part) together with D on one power-of-two grid per channel.
      That is reproduced here exactly, with peak_m = max |h| of each mode measured on calibration sequences
      (``calibrate``), so what is trained is what is compiled.
    """

    def __init__(self, s4d: nn.Module, bits: int, decay_bits: int) -> None:
        self.s4d, self.lim, self.one = s4d, limit(bits), float(1 << decay_bits)
        self.peak: torch.Tensor | None = None
        self.u: torch.Tensor | None = None

    @torch.no_grad()
    def calibrate(self) -> None:
        """Per-mode peak |h| of the recurrence on the captured input ``u`` [B, T, H]."""
        dA, dB = self.s4d.discretize()
        h = torch.zeros(self.u.shape[0], *dA.shape, dtype=dA.dtype)
        peak = torch.zeros(dA.shape)
        for t in range(self.u.shape[1]):
            h = dA * h + dB * self.u[:, t, :, None]
            peak = torch.maximum(peak, h.abs().amax(0))
        self.peak = peak

    def b_prime(self, dB: torch.Tensor) -> torch.Tensor:
        """The integer input coefficients b' the quantiser will choose (ssmquant.mode_basis, up to 2^k)."""
        mag = dB.detach().abs()
        peak = self.peak if self.peak is not None else mag
        req = torch.where(peak > 0, 0.75 * mag / peak.clamp_min(1e-30), torch.zeros_like(mag))
        out = torch.full_like(mag, float(self.lim))
        for h in range(mag.shape[0]):
            r = req[h][req[h] > 0]
            if r.numel() == 0:
                continue
            if float(r.max() / r.min()) > self.lim:
                k = math.ceil(math.log2(1.0 / float(r.min())))
            else:
                k = math.floor(math.log2(self.lim / float(r.max())))
            want = req[h] * 2.0 ** k
            out[h] = torch.where(want > 0, want.floor().clamp(1, self.lim), torch.full_like(want, float(self.lim)))
        return out

    def quantized(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(dA_q, dB, C_q, D_q) with straight-through gradients."""
        s4d = self.s4d
        dA, dB = s4d.discretize()
        dAq = torch.complex(dA.real + (round_half_away_like(dA.real * self.one) / self.one - dA.real).detach(),
                            dA.imag + (round_half_away_like(dA.imag * self.one) / self.one - dA.imag).detach())
        C = s4d._complex_C()
        bp = self.b_prime(dB)
        z = 2 * C * dB / bp  # the readout weights in the quantiser's basis (up to a power of two per channel)
        with torch.no_grad():
            peak = torch.maximum(z.real.abs(), z.imag.abs()).amax(-1)
            step = torch.exp2(torch.ceil(torch.log2(peak.clamp_min(1e-30) / self.lim)))
            # D shares the channel's grid in the quantiser, at a ratio set by the activation scales: modelled
            # here by its own power-of-two grid (optimistic when |D| is much larger than the C terms)
            d_step = torch.exp2(torch.ceil(torch.log2(s4d.D.abs().clamp_min(1e-30) / self.lim)))
        zq = torch.complex(fake_quant(z.real, step[:, None], 1 << 30), fake_quant(z.imag, step[:, None], 1 << 30))
        Cq = zq * bp / (2 * dB)
        Dq = fake_quant(s4d.D, d_step, 1 << 30)
        return dAq, dB, Cq, Dq

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """S4D.forward (FFT convolution) with the quantised poles, C and D."""
        if self.s4d.bidirectional:
            raise NeurocompileError("finetune: a bidirectional S4D cannot be compiled (see the discretize pass)")
        self.u = u.detach()
        dAq, dB, Cq, Dq = self.quantized()
        L = u.shape[1]
        steps = torch.arange(L, dtype=dAq.real.dtype)
        k = 2.0 * torch.einsum("hn,hnl->hl", Cq * dB, torch.exp(torch.log(dAq).unsqueeze(-1) * steps)).real
        x = u.transpose(1, 2)
        y = torch.fft.irfft(torch.fft.rfft(x, n=2 * L) * torch.fft.rfft(k, n=2 * L), n=2 * L)[..., :L]
        return (y + Dq.unsqueeze(-1) * x).transpose(1, 2)


class _ActQuant:
    """Forward hook fake-quantising a module's output (or the first element of a tuple) with a running max."""

    def __init__(self, bits: int, momentum: float = 0.9) -> None:
        self.lim, self.m, self.peak = limit(bits), momentum, None

    def __call__(self, module: nn.Module, inputs: Any, output: Any) -> Any:
        y = output[0] if isinstance(output, tuple) else output
        cur = float(y.detach().abs().max())
        self.peak = cur if self.peak is None else max(cur, self.m * self.peak + (1 - self.m) * cur)
        yq = fake_quant(y, torch.tensor(max(self.peak, 1e-12) / self.lim, dtype=y.dtype), self.lim)
        return (yq,) + tuple(output[1:]) if isinstance(output, tuple) else yq


def _instrument(model: nn.Module, cfg: QATConfig, steps: int, weights: str = "int") -> list[Any]:
    """Register the fake quantisers; returns the hook handles."""
    from neurocompile.models.mixing import GSU, GLUMix
    from neurocompile.models.s4d import S4D

    ternary = weights in ("ternary", "binary")
    for mod in model.modules():
        if isinstance(mod, GLUMix):
            if ternary:  # the mixing layers binarize.py ternarises (the encoder and decoder keep weight_bits)
                parametrize.register_parametrization(mod.conv, "weight", _TernaryQuant(weights == "binary", 0))
            elif mod.conv.bias is not None:  # the 1x1 convolution is fed by spikes: its bias is on the grid
                parametrize.register_parametrization(mod.conv, "bias", _BiasQuant(mod.conv, cfg.weight_bits))
    for mod in model.modules():
        if isinstance(mod, (nn.Linear, nn.Conv1d)):
            if not parametrize.is_parametrized(mod, "weight"):
                parametrize.register_parametrization(mod, "weight", _RowQuant(cfg.weight_bits, 0))
        elif isinstance(mod, GSU):
            _patch_gsu(mod, _TernaryQuant(weights == "binary", 1) if ternary else _RowQuant(cfg.weight_bits, 1))
        elif isinstance(mod, S4D):
            q = _S4DQuant(mod, cfg.weight_bits, cfg.decay_bits)
            mod.forward = q.forward  # instance attribute: shadows the method for this module only
            mod._qat = q
    handles = []
    if hasattr(model, "encoder") and hasattr(model, "blocks"):
        handles.append(model.encoder.register_forward_hook(_ActQuant(cfg.residual_bits)))
        for blk in model.blocks:
            handles.append(blk.register_forward_hook(_ActQuant(cfg.residual_bits)))
            handles.append(blk.s4d.register_forward_hook(_ActQuant(cfg.ssm_out_bits)))
    return handles


@torch.no_grad()
def _calibrate(model: nn.Module, x: torch.Tensor, rounds: int) -> None:
    """Measure every S4D's per-mode peak state on ``x`` (exact neurons, eval mode), as the quantiser does."""
    qs = [m._qat for m in model.modules() if hasattr(m, "_qat")]
    for _ in range(rounds):
        model.eval()
        model(x, exact=True)
        for q in qs:
            q.calibrate()


def _strip(model: nn.Module, handles: list[Any]) -> None:
    for h in handles:
        h.remove()
    for mod in model.modules():
        if parametrize.is_parametrized(mod):
            for name in list(mod.parametrizations.keys()):
                parametrize.remove_parametrizations(mod, name, leave_parametrized=False)
        for attr in ("forward", "_qat"):
            if attr in vars(mod):
                delattr(mod, attr)


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
             progress: bool = True, decay_bits: int | None = None, state_bits: int | None = None,
             weights: str = "int", exact_neurons: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """Quantisation-aware fine-tuning of ``model`` (an SSMClassifier) on ``x``, ``y`` for ``target``'s precision.

    ``weight_bits`` / ``decay_bits`` / ``state_bits`` override the target's, ``weights`` ('int', 'ternary',
    'binary') is the export's weight mode: compile with the same options. ``exact_neurons``: train through the
    exact sequential neurons (what the chip runs; slower) instead of the model's training-time form. Returns
    ``(fine-tuned copy in eval mode, metrics)``; the input model is not modified.
    """
    if weights not in ("int", "ternary", "binary"):
        raise NeurocompileError(f"finetune: weights={weights!r} is invalid; expected int, ternary or binary")
    if x is None or y is None:
        raise NeurocompileError("finetune needs training data x and labels y")
    if epochs < 1:
        raise NeurocompileError(f"finetune: epochs must be >= 1, got {epochs}")
    prec = Precision.from_target(target, CompileOptions(weight_bits=weight_bits, decay_bits=decay_bits,
                                                        state_bits=state_bits))
    cfg = QATConfig(prec)
    xt, yt = _as_tensors(x, y)
    tuned = copy.deepcopy(model)
    handles = _instrument(tuned, cfg, int(xt.shape[1]), weights)
    gen = torch.Generator().manual_seed(seed)
    from neurocompile.models.training import TrainSettings, param_groups

    # the S4D dynamics (dt, A) move ten times slower, as in the reference training (no weight decay anywhere)
    groups = param_groups(tuned, TrainSettings(lr=lr, ssm_lr=lr / 10, weight_decay=0.0))
    opt = torch.optim.AdamW([g for g in groups if g["params"]])
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
            _calibrate(tuned, xt[:256], rounds=2 if ep == 0 else 1)
            tuned.train()
            perm = torch.randperm(n, generator=gen)
            tot, correct = 0.0, 0
            for i in range(0, n, batch_size):
                idx = perm[i:i + batch_size]
                logits = tuned(xt[idx], exact=True) if exact_neurons else tuned(xt[idx])
                loss = nn.functional.cross_entropy(logits, yt[idx])
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(tuned.parameters(), 5.0)
                opt.step()
                sched.step()
                tot += loss.item() * len(idx)
                correct += int((logits.argmax(-1) == yt[idx]).sum())
                if bar is not None:
                    bar.update(task, advance=1, loss=loss.item())
            history.append({"epoch": ep, "loss": tot / n, "train_accuracy": correct / n})
    finally:
        if bar is not None:
            bar.stop()
        _strip(tuned, handles)
    tuned.eval()
    metrics = {"qat": {"epochs": epochs, "weights": weights, "weight_bits": prec.weight_bits,
                       "decay_bits": prec.decay_bits,
                       "lr": lr, "batch_size": batch_size, "seed": seed, "history": history,
                       "target": prec.target_name}}
    return tuned, metrics
