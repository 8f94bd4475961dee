"""Shared pieces of the passes: the compile options, the precision a pass compiles for, the pass context.

A pass is a module with ``NAME`` and ``run(graph, ctx) -> Graph``; it never mutates its input graph (it works
on a copy) and records what it did in ``ctx.info``. :mod:`neurocompile.passes.pipeline` runs them in order
and verifies the IR before and after each one.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from neurocompile.errors import NeurocompileError
from neurocompile.fixedpoint import limit
from neurocompile.ir.graph import Graph

__all__ = [
    "CompileOptions", "Precision", "PassContext", "PrecisionWarning", "limit", "rewire", "unique_name",
]

WEIGHT_MODES = ("int", "ternary", "binary")
CALIBRATION_METHODS = ("max", "percentile", "mse")
LAYERNORM_MODES = ("integer", "freeze", "refuse")
ON_PRECISION = ("error", "warn")


class PrecisionWarning(UserWarning):
    """A quantisation choice lost precision (the message names node, value, limit and the option that helps)."""


@dataclass
class CompileOptions:
    """Options of :func:`neurocompile.passes.pipeline.compile_graph` (the CLI's export flags map onto these).

    weights: 'int' (weight_bits mantissas), 'ternary' or 'binary' (mixing-layer weights in {-1, 0, 1} x a
        per-channel scale; see ``binarize.py``).
    calibration: how an activation's clipping range is chosen from the calibration trace: 'max',
        'percentile' (of |x|, ``percentile``) or 'mse' (the clip minimising the quantisation MSE).
    weight_bits, state_bits, decay_bits, accumulator_bits, message_bits: override the target's precision
        (for sweeps; ``None`` = the target's value).
    lut_bits: look-up tables have up to 2^lut_bits entries.
    calib_samples: at most this many calibration sequences are used.
    layernorm: 'integer' (default: a LayerNorm becomes a ``QLayerNorm``, per-step integer mean, variance and a
        1/sqrt look-up table; docs/semantics.md), 'freeze' (replace it by the per-channel affine map of its
        calibration-average statistics; an approximation, measured) or 'refuse' (UnsupportedOpError).
    on_precision: 'error' raises QuantizationError for precision problems that change the model's behaviour
        (a pole that loses its decay over the calibration horizon); 'warn' reports them and continues.
    pole_tolerance: largest tolerated deviation of a quantised mode's impulse response over the calibration
        horizon (max_t |a_q^t - dA^t|) before ``on_precision`` applies.
    ternarize_io: with ``weights`` ternary/binary, also ternarise the encoder and the readout (default: only
        the hidden mixing layers, the common practice).
    pow2_scales: activation scales are powers of two (at most 1 bit of activation range unused), so that every
        weight's grid is a power of two per channel: the grid quantisation-aware fine-tuning trains on.
    print_ir: print the IR after each pass.
    verify: run the IR verifier before and after every pass.
    """

    weights: str = "int"
    calibration: str = "percentile"
    percentile: float = 99.99
    weight_bits: int | None = None
    state_bits: int | None = None
    decay_bits: int | None = None
    accumulator_bits: int | None = None
    message_bits: int | None = None
    lut_bits: int = 10
    calib_samples: int = 256
    layernorm: str = "integer"
    on_precision: str = "error"
    pole_tolerance: float = 0.25
    ternarize_io: bool = False
    pow2_scales: bool = True
    print_ir: bool = False
    verify: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def choice(name: str, allowed: tuple[str, ...]) -> None:
            v = getattr(self, name)
            if v not in allowed:
                raise NeurocompileError(f"compile option {name}={v!r} is invalid; expected one of {', '.join(allowed)}")

        choice("weights", WEIGHT_MODES)
        choice("calibration", CALIBRATION_METHODS)
        choice("layernorm", LAYERNORM_MODES)
        choice("on_precision", ON_PRECISION)
        if not 50.0 < float(self.percentile) <= 100.0:
            raise NeurocompileError(f"compile option percentile={self.percentile} must be in (50, 100]")
        for name, lo, hi in (("weight_bits", 2, 16), ("state_bits", 4, 32), ("decay_bits", 2, 24),
                             ("accumulator_bits", 8, 62), ("message_bits", 1, 32)):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi):
                raise NeurocompileError(f"compile option {name}={v!r} must be an integer in [{lo}, {hi}] or None")
        if not 2 <= int(self.lut_bits) <= 16:
            raise NeurocompileError(f"compile option lut_bits={self.lut_bits} must be in [2, 16]")
        if int(self.calib_samples) < 1:
            raise NeurocompileError(f"compile option calib_samples={self.calib_samples} must be >= 1")
        if not self.pole_tolerance > 0:
            raise NeurocompileError(f"compile option pole_tolerance={self.pole_tolerance} must be > 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _PrecisionSpec(Protocol):  # what we read of neurocompile.target.PrecisionSpec
    weight_bits: int
    state_bits: int
    accumulator_bits: int
    graded_message_bits: int
    decay_bits: int


@dataclass(frozen=True)
class Precision:
    """The integer widths one compilation uses: the target's, with the options' overrides applied."""

    weight_bits: int = 8
    state_bits: int = 24
    accumulator_bits: int = 24
    message_bits: int = 24
    decay_bits: int = 12
    input_axons: int = 4096
    output_axons: int = 4096
    weight_exp_min: int = -8
    weight_exp_max: int = 7
    threshold_mant_bits: int = 17
    threshold_shift: int = 6
    target_name: str = "custom"

    @classmethod
    def from_target(cls, target: Any, options: CompileOptions | None = None) -> Precision:
        """Read ``target.precision`` / ``target.core`` (a :class:`neurocompile.target.Target`, or any object with
        the same attributes, or None for Loihi 2's defaults) and apply ``options``' overrides."""
        o = options or CompileOptions()
        p = getattr(target, "precision", None)
        core = getattr(target, "core", None)

        def get(obj: Any, name: str, default: int) -> int:
            return int(getattr(obj, name, default)) if obj is not None else default

        d = cls()
        return cls(
            weight_bits=o.weight_bits or get(p, "weight_bits", d.weight_bits),
            state_bits=o.state_bits or get(p, "state_bits", d.state_bits),
            accumulator_bits=o.accumulator_bits or get(p, "accumulator_bits", d.accumulator_bits),
            message_bits=o.message_bits or get(p, "graded_message_bits", d.message_bits),
            decay_bits=o.decay_bits or get(p, "decay_bits", d.decay_bits),
            input_axons=get(core, "input_axons", d.input_axons),
            output_axons=get(core, "output_axons", d.output_axons),
            weight_exp_min=get(p, "weight_exp_min", d.weight_exp_min),
            weight_exp_max=get(p, "weight_exp_max", d.weight_exp_max),
            threshold_mant_bits=get(p, "threshold_mant_bits", d.threshold_mant_bits),
            threshold_shift=get(p, "threshold_shift", d.threshold_shift),
            target_name=str(getattr(target, "name", "custom")) if target is not None else "default",
        )

    @property
    def wmax(self) -> int:
        """Largest weight mantissa magnitude."""
        return limit(self.weight_bits)

    @property
    def acc_limit(self) -> int:
        return limit(self.accumulator_bits)


@dataclass
class PassContext:
    """What every pass may read (target precision, options, calibration data) and write (``info``)."""

    precision: Precision
    options: CompileOptions
    calib_x: np.ndarray | None = None
    target: Any = None
    info: dict[str, Any] = field(default_factory=lambda: {"warnings": [], "passes": {}})

    def warn(self, message: str) -> None:
        """Record (and emit as a :class:`PrecisionWarning`) a precision warning."""
        self.info["warnings"].append(message)
        warnings.warn(message, PrecisionWarning, stacklevel=3)

    def note(self, pass_name: str, **items: Any) -> None:
        self.info["passes"].setdefault(pass_name, {}).update(items)


def unique_name(graph: Graph, base: str) -> str:
    """``base`` if unused in ``graph``, else ``base.1``, ``base.2``, ..."""
    if base not in graph:
        return base
    i = 1
    while f"{base}.{i}" in graph:
        i += 1
    return f"{base}.{i}"


def rewire(graph: Graph, old: str, new: str) -> None:
    """Move every out-edge of ``old`` to ``new`` (same port and delay) and ``old``'s graph-output slot."""
    for dst in list(graph.g.successors(old)):
        e = dict(graph.edge(old, dst))
        graph.g.remove_edge(old, dst)
        graph.connect(new, dst, e["port"], e.get("delay", 0))
        graph.g.edges[new, dst]["order"] = e["order"]
    graph.outputs = [new if n == old else n for n in graph.outputs]
