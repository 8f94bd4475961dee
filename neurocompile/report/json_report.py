"""Deterministic JSON for ``simulate`` and ``report`` (schema: docs/report-schema.md).

Determinism: keys sorted, two-space indent, floats rounded to 12 significant digits (so the last bits of
a sum do not change the file), NaN and infinities written as ``null``, tuples as arrays, ASCII only, one
trailing newline. Files are written atomically (temporary file in the same folder, then rename).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from neurocompile.cost.energy import EnergyReport
from neurocompile.fileio import atomic_write_text  # noqa: F401 - re-exported
from neurocompile.sim.counters import RunCounts

__all__ = [
    "SIMULATE_SCHEMA",
    "REPORT_SCHEMA",
    "FLOAT_DIGITS",
    "normalize",
    "dumps",
    "write_json",
    "load_json",
    "atomic_write_text",
    "layer_activity",
    "simulate_json",
    "report_json",
]

SIMULATE_SCHEMA = "neurocompile.simulate/1"
REPORT_SCHEMA = "neurocompile.report/1"
FLOAT_DIGITS = 12


def normalize(obj: Any) -> Any:
    """A JSON-ready copy of ``obj``: dataclasses and objects with ``to_dict`` become dicts, numpy scalars and
    arrays become Python numbers and lists, floats are rounded to FLOAT_DIGITS significant digits and
    non-finite floats become None."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if not math.isfinite(obj):
            return None
        return float(f"{obj:.{FLOAT_DIGITS}g}")
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Mapping):
        return {str(k): normalize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [normalize(v) for v in obj]
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return normalize(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return normalize({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
    # numpy scalars and arrays, without importing numpy here
    if hasattr(obj, "tolist") and callable(obj.tolist):
        return normalize(obj.tolist())
    if hasattr(obj, "item") and callable(obj.item):
        return normalize(obj.item())
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def dumps(obj: Any) -> str:
    """Deterministic JSON text of ``obj`` (see module docstring), ending in a newline."""
    return json.dumps(normalize(obj), sort_keys=True, indent=2, ensure_ascii=True, allow_nan=False) + "\n"


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as deterministic JSON, atomically. Returns the path."""
    return atomic_write_text(path, dumps(obj))


def load_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def layer_activity(counts: RunCounts) -> list[dict[str, Any]]:
    """Per-layer activity: every LayerCounts field (per-run totals) plus per-sample and rate figures."""
    s = max(counts.samples, 1)
    out = []
    for lc in counts.layers:
        d = lc.to_dict()
        d.update(
            spikes_per_sample=lc.spikes / s,
            graded_messages_per_sample=lc.graded_messages / s,
            spike_rate=lc.spike_rate,
            message_rate=lc.message_rate,
            synops_effective=lc.synops_effective,
            synops_effective_per_sample=lc.synops_effective / s,
            partial_messages_per_sample=lc.partial_messages / s,
        )
        out.append(d)
    return out


def _merge_meta(out: dict[str, Any], meta: Mapping[str, Any] | None) -> dict[str, Any]:
    if meta:
        clash = sorted(set(meta) & set(out))
        if clash:
            raise ValueError(f"meta keys clash with report keys: {', '.join(clash)}")
        out.update(meta)
    return out


def simulate_json(
    counts: RunCounts,
    accuracy: float | None = None,
    float_accuracy: float | None = None,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``simulate`` JSON document (not yet normalised; pass it to :func:`write_json`).

    ``meta``: extra top-level keys (e.g. 'target', 'artifact', 'dataset'); may not override schema keys.
    """
    out: dict[str, Any] = {
        "schema": SIMULATE_SCHEMA,
        "accuracy": accuracy,
        "samples": counts.samples,
        "steps_per_sample": counts.steps_per_sample,
        "cores_used": counts.cores_used,
        "metrics": counts.metrics(),
        "layers": layer_activity(counts),
    }
    if float_accuracy is not None:
        out["float_accuracy"] = float_accuracy
    return _merge_meta(out, meta)


def report_json(
    energy: EnergyReport,
    counts: RunCounts | None = None,
    accuracy: float | None = None,
    float_accuracy: float | None = None,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``report`` JSON document: every EnergyReport field, plus the run's activity when ``counts`` is given."""
    out = energy.to_dict()
    out["schema"] = REPORT_SCHEMA
    if accuracy is not None:
        out["accuracy"] = accuracy
    if float_accuracy is not None:
        out["float_accuracy"] = float_accuracy
    if counts is not None:
        out["activity"] = {"metrics": counts.metrics(), "layers": layer_activity(counts)}
    return _merge_meta(out, meta)
