"""Configuration of the reference spiking-SSM classifiers (one dataclass, serialised as a plain dict)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from neurocompile.errors import NeurocompileError

FAMILIES = ("spikingssm", "binary_s4d", "gsu", "spike_ssm")
ENCODERS = ("linear", "embedding")
NORMS = ("none", "batch", "layer")
NORM_POSITIONS = ("pre", "post")
S4D_INITS = ("lin", "inv")
NEURON_MODES = ("exact", "sdn", "pmbc")

# Which training-time parallel form each family may use ('exact' is always allowed).
_MODES_BY_FAMILY = {
    "spikingssm": ("exact", "sdn"),
    "spike_ssm": ("exact", "pmbc"),
    "binary_s4d": ("exact",),
    "gsu": ("exact",),
}


class ConfigError(NeurocompileError, ValueError):
    """A model configuration has an unknown key or an invalid value."""


@dataclass
class ModelConfig:
    """Hyper-parameters of :class:`~neurocompile.models.model.SSMClassifier`.

    ``neuron_mode`` only selects the *training-time* form of the neuron (``exact``: sequential loop with surrogate
    gradient; ``sdn``: SpikingSSM surrogate dynamic network; ``pmbc``: SPikE-SSM parallel max-min boundary
    compression). Evaluation (``model.eval()``) always runs the exact sequential neuron.
    """

    family: str = "spikingssm"  # 'spikingssm' | 'binary_s4d' | 'gsu' | 'spike_ssm'
    d_input: int = 1  # input features per step (linear encoder)
    n_classes: int = 10
    d_model: int = 32  # H, channels of the residual stream
    d_state: int = 16  # N; N/2 complex modes are stored
    n_layers: int = 2
    encoder: str = "linear"  # 'linear' | 'embedding'
    vocab_size: int = 0  # embedding encoder only
    norm: str = "none"  # 'none' | 'batch' | 'layer'
    norm_position: str = "pre"  # 'pre' | 'post'
    dropout: float = 0.0
    s4d_init: str = "lin"  # 'lin' | 'inv'
    dt_min: float = 1e-3  # log_dt ~ U[log dt_min, log dt_max] at init
    dt_max: float = 1e-1
    bidirectional: bool = False
    tau: float = 0.125  # membrane decay factor (dimensionless, per step)
    vth_init: float = 1.0  # initial firing threshold V_th
    refractory_decay: float = 0.5  # lambda, decay of the SPikE-SSM refractory trace
    rho_init: float = 0.5  # initial refractory magnitude (units of V_th)
    pmbc_iters: int = 3
    gsu_ter_threshold: float = 0.15
    neuron_mode: str = "exact"  # 'exact' | 'sdn' | 'pmbc' (training-time only)

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first invalid field."""

        def choice(name: str, allowed: tuple[str, ...]) -> None:
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"ModelConfig.{name}={value!r} is invalid; expected one of {', '.join(allowed)}")

        def positive_int(name: str) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"ModelConfig.{name}={value!r} must be a positive integer")

        choice("family", FAMILIES)
        choice("encoder", ENCODERS)
        choice("norm", NORMS)
        choice("norm_position", NORM_POSITIONS)
        choice("s4d_init", S4D_INITS)
        choice("neuron_mode", NEURON_MODES)
        for name in ("d_input", "n_classes", "d_model", "d_state", "n_layers", "pmbc_iters"):
            positive_int(name)
        if self.d_state % 2:
            raise ConfigError(f"ModelConfig.d_state={self.d_state} must be even (N/2 complex modes are stored)")
        if self.encoder == "embedding" and (isinstance(self.vocab_size, bool) or self.vocab_size < 1):
            raise ConfigError("ModelConfig.vocab_size must be >= 1 when encoder='embedding'")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"ModelConfig.dropout={self.dropout} must be in [0, 1)")
        if not 0.0 < self.dt_min <= self.dt_max:
            raise ConfigError(f"ModelConfig.dt_min={self.dt_min}, dt_max={self.dt_max}: need 0 < dt_min <= dt_max")
        if not 0.0 <= self.tau < 1.0:
            raise ConfigError(f"ModelConfig.tau={self.tau} must be in [0, 1) (a per-step decay factor)")
        if not 0.0 <= self.refractory_decay < 1.0:
            raise ConfigError(f"ModelConfig.refractory_decay={self.refractory_decay} must be in [0, 1)")
        for name in ("vth_init", "rho_init"):
            value = getattr(self, name)
            if not (value > 0.0 and math.isfinite(value)):
                raise ConfigError(f"ModelConfig.{name}={value} must be a finite positive number")
        if not 0.0 < self.gsu_ter_threshold < 1.0:
            raise ConfigError(f"ModelConfig.gsu_ter_threshold={self.gsu_ter_threshold} must be in (0, 1)")
        if self.neuron_mode not in _MODES_BY_FAMILY[self.family]:
            raise ConfigError(
                f"ModelConfig.neuron_mode={self.neuron_mode!r} is not available for family {self.family!r}; "
                f"use one of {', '.join(_MODES_BY_FAMILY[self.family])}"
            )

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field (JSON- and ``weights_only``-safe)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build a config; unknown keys raise :class:`ConfigError` naming the key, missing keys take defaults."""
        if not isinstance(data, dict):
            raise ConfigError(f"model config must be a dict, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown ModelConfig key {unknown[0]!r}" + (f" (and {unknown[1:]})" if len(unknown) > 1 else "")
                + f"; known keys: {', '.join(sorted(known))}"
            )
        return cls(**data)
