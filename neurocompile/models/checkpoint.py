"""Checkpoints of reference models: a plain dict loadable with ``torch.load(..., weights_only=True)``.

Keys: ``format`` ('neurocompile-checkpoint'), ``version`` (1), ``config`` (:meth:`ModelConfig.to_dict`),
``state_dict`` (name -> tensor, CPU, contiguous), ``metrics`` (JSON-like dict, may be empty).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from neurocompile.errors import ModelLoadError
from neurocompile.models.config import ConfigError, ModelConfig
from neurocompile.models.model import SSMClassifier

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "CheckpointFormatError", "save_checkpoint", "load_checkpoint"]

CHECKPOINT_FORMAT = "neurocompile-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointFormatError(ModelLoadError, ValueError):
    """A file is not a neurocompile checkpoint (wrong format, version, keys, config or weights)."""


def save_checkpoint(model: SSMClassifier, path: str | Path, metrics: dict[str, Any] | None = None) -> None:
    """Write ``model`` to ``path``; the same model and metrics always give the same bytes."""
    state = {k: v.detach().to("cpu").clone().contiguous() for k, v in model.state_dict().items()}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": model.config.to_dict(),
        "state_dict": state,
        "metrics": dict(metrics or {}),
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)


def load_checkpoint(path: str | Path) -> tuple[SSMClassifier, dict[str, Any]]:
    """Read a checkpoint (always ``weights_only=True``) -> ``(model in eval mode, checkpoint dict)``.

    Raises :class:`CheckpointFormatError` when the file is not a neurocompile checkpoint, and
    ``FileNotFoundError`` when it does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as exc:
        raise CheckpointFormatError(
            f"{path}: not a loadable neurocompile checkpoint (weights_only load failed: "
            f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointFormatError(
            f"{path}: not a neurocompile checkpoint (format {found!r}, expected {CHECKPOINT_FORMAT!r}); "
            "write it with neurocompile.models.save_checkpoint"
        )
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise CheckpointFormatError(
            f"{path}: checkpoint version {ckpt.get('version')!r} is not supported (expected {CHECKPOINT_VERSION})"
        )
    for key in ("config", "state_dict"):
        if not isinstance(ckpt.get(key), dict):
            raise CheckpointFormatError(f"{path}: checkpoint key {key!r} is missing or not a dict")
    try:
        config = ModelConfig.from_dict(ckpt["config"])
    except (ConfigError, TypeError) as exc:
        raise CheckpointFormatError(f"{path}: invalid model config: {exc}") from exc
    model = SSMClassifier(config)
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointFormatError(f"{path}: weights do not match the config: {exc}") from exc
    model.eval()
    ckpt.setdefault("metrics", {})
    return model, ckpt
