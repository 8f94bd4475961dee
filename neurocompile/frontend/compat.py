"""Write a model as TorchScript or as a torch.export program, with its config embedded.

neurocompile's reference models use ``torch.autograd.Function`` spike functions (surrogate gradients), which
``torch.jit.script`` cannot compile and a ``torch.jit.trace`` archive cannot save. :func:`inference_spike_functions`
swaps them, for the duration of a trace, for their forward-only definitions (the same comparisons, no surrogate):
the traced/exported graph computes exactly what the model computes in eval mode. ``torch.export`` handles the
autograd functions itself; the swap is applied there too so both files record the same operators.

Both writers embed ``neurocompile/config.json`` (the ModelConfig dict) when the model has a ``config``, so
:func:`neurocompile.frontend.load_model` needs no ``config=`` to trace the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

from neurocompile.errors import ModelLoadError
from neurocompile.frontend.load import CONFIG_EXTRA_FILE

__all__ = ["inference_spike_functions", "save_torchscript", "save_exported"]


def _triangle(x: torch.Tensor) -> torch.Tensor:
    return (x >= 0).to(x.dtype)


def _atan(x: torch.Tensor) -> torch.Tensor:
    return (x > 0).to(x.dtype)


def _ternarize(x: torch.Tensor, threshold: float, dim: int | None = None) -> torch.Tensor:
    mag = x.abs()
    peak = mag.amax() if dim is None else mag.amax(dim=dim, keepdim=True)
    return torch.sign(x) * (mag >= threshold * peak).to(x.dtype)


@contextlib.contextmanager
def inference_spike_functions() -> Iterator[None]:
    """Temporarily replace the models' surrogate-gradient spike functions by their forward definitions."""
    from neurocompile.models import mixing, neurons

    saved = (neurons.triangle_spike, neurons.atan_spike, mixing.ternarize_ste)
    neurons.triangle_spike, neurons.atan_spike, mixing.ternarize_ste = _triangle, _atan, _ternarize
    try:
        yield
    finally:
        neurons.triangle_spike, neurons.atan_spike, mixing.ternarize_ste = saved


def _config_json(model: nn.Module) -> dict[str, str]:
    cfg = getattr(model, "config", None)
    if cfg is None or not hasattr(cfg, "to_dict"):
        return {}
    return {CONFIG_EXTRA_FILE: json.dumps(cfg.to_dict(), sort_keys=True)}


def _save(model: nn.Module, path: str | os.PathLike, example_input: torch.Tensor, what: str,
          build: Callable[[nn.Module], object], write: Callable[[object, str], None]) -> Path:
    """Build ``what`` from the model (eval mode, inference spike functions) and write it with its config."""
    model = model.eval()
    with warnings.catch_warnings(), inference_spike_functions(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            built = build(model)
        except Exception as exc:
            raise ModelLoadError(f"{what} failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        write(built, str(p))
    return p


def save_torchscript(model: nn.Module, path: str | os.PathLike, example_input: torch.Tensor) -> Path:
    """``torch.jit.trace`` the model (eval mode) on ``example_input`` and save it with its config embedded.

    The trace unrolls the time loop of the neurons: the file runs sequences of ``example_input``'s length only.
    """
    return _save(model, path, example_input, "torch.jit.trace",
                 lambda m: torch.jit.trace(m, (example_input,), check_trace=False),
                 lambda t, f: torch.jit.save(t, f, _extra_files=_config_json(model)))


def save_exported(model: nn.Module, path: str | os.PathLike, example_input: torch.Tensor) -> Path:
    """``torch.export.export`` the model (eval mode) on ``example_input`` and save the ``.pt2`` with its config."""
    return _save(model, path, example_input, "torch.export",
                 lambda m: torch.export.export(m, (example_input,)),
                 lambda prog, f: torch.export.save(prog, f, extra_files=_config_json(model)))
