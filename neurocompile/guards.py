"""Checks of command options made before any long work, shared by the public functions of :mod:`neurocompile.api`.

Each failure is one :class:`~neurocompile.errors.NeurocompileError` line naming the option, the value and what
to do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from neurocompile.errors import NeurocompileError
from neurocompile.fileio import check_output_path

__all__ = ["check_outputs", "check_workers", "predictions_of", "read_config"]


def read_config(config_path: Path | str | None) -> Any:
    """The --config JSON file (None when not given); one clear line when it cannot be read."""
    if config_path is None:
        return None
    try:
        return json.loads(Path(config_path).read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else " ".join(str(e).split())[:160]
        raise NeurocompileError(f"config file '{config_path}' cannot be read as JSON ({why}); pass a JSON file "
                                "of ModelConfig fields") from None


def check_workers(workers: int) -> None:
    """--workers is a whole number >= 1."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise NeurocompileError(f"--workers must be a whole number of at least 1, got {workers!r}")


def check_outputs(*paths: Path | str | None) -> None:
    """The output files can be written (checked before the long simulation) and are distinct."""
    given = [Path(p) for p in paths if p is not None]
    for p in given:
        check_output_path(p)
    if len({p.resolve() for p in given}) < len(given):
        raise NeurocompileError("--json and --html name the same file; give two different files")


def predictions_of(result: Any, labels: Any) -> dict[str, Any]:
    """Per-sample integer-model predictions (argmax class) and labels (None without labels), for --predictions."""
    y = getattr(labels, "y", labels)
    return {"predictions": [int(v) for v in np.asarray(result.predictions).reshape(-1)],
            "labels": None if y is None else [int(v) for v in np.asarray(y).reshape(-1)]}
