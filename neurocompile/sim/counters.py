"""Activity counters: the contract between the simulator and the energy model.

The simulator fills one :class:`LayerCounts` per hardware-graph node (a "layer") and wraps them in a
:class:`RunCounts`. The energy model (:mod:`neurocompile.cost.energy`) and the reports read nothing else.

Every event count is a **per-run total**: summed over all samples and all time steps of the run. Definitions
(one "step" is one time step of one sample):

- ``spikes``: binary (1-bit or ternary) messages emitted by the layer's neurons.
- ``graded_messages``: multi-bit (graded) messages emitted; ``payload_bits`` is the sum of their payload widths.
  A non-zero graded output counts once; a zero output is not sent and not counted.
- ``synops_dense``: synaptic operations as if every input were non-zero: fan_in x fan_out per step
  (for a dense layer: out x in x steps). NeuroBench's "dense synaptic operations".
- ``synops_effective_mac``: synaptic operations actually driven by non-zero **graded** inputs (a multiply of the
  payload by the weight, then an add): NeuroBench's "effective MACs".
- ``synops_effective_ac``: synaptic operations actually driven by **binary** spikes (an add of the weight):
  NeuroBench's "effective ACs".
- ``compartment_updates``: compartments serviced (accessed): every compartment of the layer is serviced once per
  step, so normally ``neurons x steps``; each pays the neuron access cost.
- ``neuron_updates``: of those, the **updated** ones, by Loihi's rule: a synaptic event arrived (even when the
  events sum to zero), or the state was non-zero before the step; each pays the update cost on top.
- ``state_update_ops``: multiply-adds of an SSM mode recurrence (a complex mode costs 4 per step: the 2x2
  rotation-and-decay), counted on top of the compartment updates.
- ``lut_ops``: look-up-table evaluations (non-native nonlinearities: sigmoid, GELU).
- ``messages``: messages sent, one per distinct destination core (a spike reaching k distinct cores counts k,
  the sender's own core included, as on Loihi). A host-side input sends host-to-chip messages from the host port.
  ``messages_local`` is the part of ``messages`` delivered inside the sender's tile.
- ``messages_in``: messages received by the layer's cores (each pays the receiving axon's cost and time; a
  synapse-only dense counts the messages that reach its rows).
- ``hops``: mesh router hops travelled by those messages; ``hops_ns`` is the part of ``hops`` along the
  north-south axis (the rest is east-west).
- ``saturations``: values clipped to their declared width (states, messages, LUT indices).
- ``partial_messages``: graded messages sent by the layer's partial-sum compartments to their somas (a neuron
  over the core's input axons, split by :mod:`neurocompile.mapping.partials`): one per partial compartment and
  step whose partial sum is non-zero, own core included. From the simulator's counters it is an **upper bound**
  (steps where any input of the part's slice with a non-zero weight was non-zero: the run keeps per-input
  totals, not the per-step sums); :func:`neurocompile.sim.activity.with_exact_partials` counts it exactly from
  a recorded trace. ``partial_hops`` and ``partial_hops_ns``: the mesh hops of those messages (and their
  north-south part). They are not part of ``messages`` and ``hops``.
- ``steps``: time steps simulated for this layer, summed over samples (normally samples x steps_per_sample).
- ``samples``: samples simulated.

Static fields: ``role`` is the node's placement role ('host': runs on the host, priced as host work;
'synapse': weights stored on its destinations' cores; 'compute': holds compartments; '' = unknown) and
``synapse_format`` the storage of its synapses ('dense', 'sparse', 'conv'; '' = none), which sets the price of a
look-up.

Placement fields: ``core_ids`` are the cores the layer occupies (empty when the layer is not placed, e.g. a
host-side readout); ``core_neurons`` optionally gives the compartments on each of those cores, and per-core
aggregation splits the layer's events in that proportion (evenly when it is empty).
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from neurocompile.errors import ArtifactError

__all__ = ["LayerCounts", "RunCounts", "EVENT_FIELDS", "COUNT_FIELDS", "FORMAT", "VERSION"]

FORMAT = "neurocompile.counts"
VERSION = 3  # 3: partial-sum message counters
READABLE_VERSIONS = (1, 2, 3)

EVENT_FIELDS: tuple[str, ...] = (
    "spikes",
    "graded_messages",
    "payload_bits",
    "synops_dense",
    "synops_effective_mac",
    "synops_effective_ac",
    "neuron_updates",
    "compartment_updates",
    "state_update_ops",
    "lut_ops",
    "messages",
    "messages_local",
    "messages_in",
    "hops",
    "hops_ns",
    "saturations",
    "partial_messages",
    "partial_hops",
    "partial_hops_ns",
)
"""Per-run event totals, split across cores by :meth:`RunCounts.per_core`."""

COUNT_FIELDS: tuple[str, ...] = EVENT_FIELDS + ("steps", "samples")
"""All summable fields of :class:`LayerCounts` (added by ``__add__``)."""

_STATIC_FIELDS = ("name", "kind", "core_ids", "neurons", "synapses", "core_neurons", "role", "synapse_format")
ROLES = ("", "host", "synapse", "compute")
SYNAPSE_FORMATS = ("", "dense", "sparse", "conv")


def _as_int(value: Any, what: str) -> int:
    try:
        v = operator.index(value)  # accepts numpy integers, rejects floats
    except TypeError:
        raise TypeError(f"{what} must be an integer, got {type(value).__name__} {value!r}") from None
    if v < 0:
        raise ValueError(f"{what} must be >= 0, got {v}")
    return int(v)


@dataclass(frozen=True)
class LayerCounts:
    """Activity of one layer (hardware-graph node) over one run. All event counts are per-run totals."""

    name: str  # node name in the hardware graph
    kind: str  # node type, e.g. 'QDense', 'QLIF', 'QModeBank'
    core_ids: tuple[int, ...] = ()  # cores the layer occupies; () = not placed on the chip
    neurons: int = 0  # compartments used by the layer
    synapses: int = 0  # synapses (non-zero weights) stored for the layer
    spikes: int = 0
    graded_messages: int = 0
    payload_bits: int = 0
    synops_dense: int = 0
    synops_effective_mac: int = 0
    synops_effective_ac: int = 0
    neuron_updates: int = 0
    compartment_updates: int = 0
    state_update_ops: int = 0
    lut_ops: int = 0
    messages: int = 0
    messages_local: int = 0
    messages_in: int = 0
    hops: int = 0
    hops_ns: int = 0
    saturations: int = 0
    partial_messages: int = 0  # graded partial sums sent to this layer's somas (upper bound unless exact)
    partial_hops: int = 0
    partial_hops_ns: int = 0
    steps: int = 0  # time steps simulated, summed over samples
    samples: int = 0
    core_neurons: tuple[int, ...] = ()  # compartments on each core of core_ids; () = split evenly
    role: str = ""  # 'host' | 'synapse' | 'compute' | '' (unknown)
    synapse_format: str = ""  # 'dense' | 'sparse' | 'conv' | '' (no synapses)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"LayerCounts.name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.kind, str):
            raise TypeError(f"LayerCounts '{self.name}': kind must be a string, got {self.kind!r}")
        for f in ("neurons", "synapses") + COUNT_FIELDS:
            object.__setattr__(self, f, _as_int(getattr(self, f), f"LayerCounts '{self.name}'.{f}"))
        if self.role not in ROLES:
            raise ValueError(f"LayerCounts '{self.name}': role {self.role!r} is not one of {ROLES}")
        if self.synapse_format not in SYNAPSE_FORMATS:
            raise ValueError(f"LayerCounts '{self.name}': synapse_format {self.synapse_format!r} is not one of "
                             f"{SYNAPSE_FORMATS}")
        ids = tuple(_as_int(c, f"LayerCounts '{self.name}'.core_ids") for c in self.core_ids)
        object.__setattr__(self, "core_ids", ids)
        cn = tuple(_as_int(c, f"LayerCounts '{self.name}'.core_neurons") for c in self.core_neurons)
        object.__setattr__(self, "core_neurons", cn)
        if cn and len(cn) != len(ids):
            raise ValueError(f"LayerCounts '{self.name}': core_neurons has {len(cn)} entries for {len(ids)} core_ids")
        if self.messages_local > self.messages:
            raise ValueError(
                f"LayerCounts '{self.name}': messages_local {self.messages_local} > messages {self.messages}"
            )
        if self.hops_ns > self.hops:
            raise ValueError(f"LayerCounts '{self.name}': hops_ns {self.hops_ns} > hops {self.hops}")
        if self.partial_hops_ns > self.partial_hops:
            raise ValueError(f"LayerCounts '{self.name}': partial_hops_ns {self.partial_hops_ns} > partial_hops "
                             f"{self.partial_hops}")

    # ---- arithmetic ---------------------------------------------------------------------------------------

    def __add__(self, other: LayerCounts) -> LayerCounts:
        """Sum the counts of two runs of the same layer (same name, kind, placement and size)."""
        if not isinstance(other, LayerCounts):
            return NotImplemented
        for f in _STATIC_FIELDS:
            if getattr(self, f) != getattr(other, f):
                raise ValueError(
                    f"cannot add counts of different layers: {f} {getattr(self, f)!r} != {getattr(other, f)!r}"
                    f" (layer '{self.name}')"
                )
        summed = {f: getattr(self, f) + getattr(other, f) for f in COUNT_FIELDS}
        return dataclasses.replace(self, **summed)

    # ---- derived ------------------------------------------------------------------------------------------

    @property
    def synops_effective(self) -> int:
        """Synaptic operations actually performed (MACs + ACs)."""
        return self.synops_effective_mac + self.synops_effective_ac

    @property
    def spike_rate(self) -> float:
        """Binary spikes per neuron per step (0 when there are no neurons or no steps)."""
        denom = self.neurons * self.steps
        return self.spikes / denom if denom else 0.0

    @property
    def message_rate(self) -> float:
        """Emitted messages (binary + graded) per neuron per step."""
        denom = self.neurons * self.steps
        return (self.spikes + self.graded_messages) / denom if denom else 0.0

    def core_shares(self) -> dict[int, float]:
        """Fraction of the layer's events attributed to each of its cores (sums to 1; {} when unplaced)."""
        if not self.core_ids:
            return {}
        total = sum(self.core_neurons)
        if self.core_neurons and total > 0:
            weights = [n / total for n in self.core_neurons]
        else:
            weights = [1.0 / len(self.core_ids)] * len(self.core_ids)
        shares: dict[int, float] = {}
        for c, w in zip(self.core_ids, weights):
            shares[c] = shares.get(c, 0.0) + w
        return shares

    # ---- serialisation ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerCounts:
        if not isinstance(d, dict):
            raise ArtifactError(f"layer counts must be an object, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ArtifactError(f"layer counts '{d.get('name', '?')}': unknown key(s) {', '.join(unknown)}")
        for req in ("name", "kind"):
            if req not in d:
                raise ArtifactError(f"layer counts: missing key '{req}'")
        kw = dict(d)
        for f in ("core_ids", "core_neurons"):
            if f in kw:
                kw[f] = tuple(kw[f])
        try:
            return cls(**kw)
        except (TypeError, ValueError) as e:
            raise ArtifactError(f"layer counts '{d.get('name')}': {e}") from None


@dataclass(frozen=True)
class RunCounts:
    """Counts of one run: one :class:`LayerCounts` per layer, in graph order."""

    layers: tuple[LayerCounts, ...]
    samples: int
    steps_per_sample: int
    cores_used: int = 0  # cores the placement uses; 0 = derive from the layers' core_ids

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        for lc in layers:
            if not isinstance(lc, LayerCounts):
                raise TypeError(f"RunCounts.layers must hold LayerCounts, got {type(lc).__name__}")
        names = [lc.name for lc in layers]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"RunCounts: duplicate layer name(s) {', '.join(dup)}")
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "samples", _as_int(self.samples, "RunCounts.samples"))
        object.__setattr__(self, "steps_per_sample", _as_int(self.steps_per_sample, "RunCounts.steps_per_sample"))
        cores = _as_int(self.cores_used, "RunCounts.cores_used")
        if cores == 0:
            cores = len(self.core_ids())
        object.__setattr__(self, "cores_used", cores)

    def __add__(self, other: RunCounts) -> RunCounts:
        """Counts of two runs of the same graph (e.g. two batches of samples)."""
        if not isinstance(other, RunCounts):
            return NotImplemented
        if [lc.name for lc in self.layers] != [lc.name for lc in other.layers]:
            raise ValueError("cannot add counts of different graphs: layer names differ")
        if self.steps_per_sample != other.steps_per_sample:
            raise ValueError(
                f"cannot add runs with {self.steps_per_sample} and {other.steps_per_sample} steps per sample"
            )
        if self.cores_used != other.cores_used:
            raise ValueError(f"cannot add runs placed on {self.cores_used} and {other.cores_used} cores")
        return RunCounts(
            layers=tuple(a + b for a, b in zip(self.layers, other.layers)),
            samples=self.samples + other.samples,
            steps_per_sample=self.steps_per_sample,
            cores_used=self.cores_used,
        )

    @property
    def total_steps(self) -> int:
        """Time steps of the whole run (samples x steps_per_sample)."""
        return self.samples * self.steps_per_sample

    def layer(self, name: str) -> LayerCounts:
        for lc in self.layers:
            if lc.name == name:
                return lc
        raise KeyError(name)

    def core_ids(self) -> list[int]:
        """Distinct cores occupied by placed layers, sorted."""
        return sorted({c for lc in self.layers for c in lc.core_ids})

    def total(self, field_name: str) -> int:
        """Sum of one count field over all layers."""
        return sum(getattr(lc, field_name) for lc in self.layers)

    def per_core(self) -> dict[int, dict[str, float]]:
        """Events summed per core: core id -> {field: total} over EVENT_FIELDS plus 'neurons' and 'synapses'.

        A layer on several cores contributes to each in proportion to ``core_neurons`` (evenly when not
        given), so values can be fractional. Unplaced layers (no core_ids) are left out.
        """
        out: dict[int, dict[str, float]] = {}
        for lc in self.layers:
            for core, share in lc.core_shares().items():
                acc = out.setdefault(core, {f: 0.0 for f in ("neurons", "synapses") + EVENT_FIELDS})
                for f in ("neurons", "synapses") + EVENT_FIELDS:
                    acc[f] += share * getattr(lc, f)
        return dict(sorted(out.items()))

    def layers_on_core(self) -> dict[int, list[str]]:
        """Core id -> names of the layers placed (partly) on it."""
        out: dict[int, list[str]] = {}
        for lc in self.layers:
            for core in dict.fromkeys(lc.core_ids):
                out.setdefault(core, []).append(lc.name)
        return dict(sorted(out.items()))

    def metrics(self) -> dict[str, float]:
        """NeuroBench-style activity metrics of the run (per sample unless named otherwise)."""
        s = max(self.samples, 1)
        neurons = sum(lc.neurons for lc in self.layers)
        slots = sum(lc.neurons * lc.steps for lc in self.layers)  # neuron-steps
        synapses = sum(lc.synapses for lc in self.layers)
        spikes = self.total("spikes")
        graded = self.total("graded_messages")
        eff = self.total("synops_effective_mac") + self.total("synops_effective_ac")
        return {
            "samples": float(self.samples),
            "steps_per_sample": float(self.steps_per_sample),
            "neurons": float(neurons),
            "synapses": float(synapses),
            "spikes_per_sample": spikes / s,
            "graded_messages_per_sample": graded / s,
            "payload_bits_per_sample": self.total("payload_bits") / s,
            "spike_rate": spikes / slots if slots else 0.0,
            # fraction of neuron outputs that are zero (no message sent)
            "activation_sparsity": 1.0 - (spikes + graded) / slots if slots else 1.0,
            "synops_dense_per_sample": self.total("synops_dense") / s,
            "synops_effective_mac_per_sample": self.total("synops_effective_mac") / s,
            "synops_effective_ac_per_sample": self.total("synops_effective_ac") / s,
            # Dampfhoffer et al. 2022 compare SNNs and ANNs by synaptic events per synapse per inference
            "synaptic_events_per_synapse_per_sample": eff / s / synapses if synapses else 0.0,
            "neuron_updates_per_sample": self.total("neuron_updates") / s,
            "compartment_updates_per_sample": self.total("compartment_updates") / s,
            "state_update_ops_per_sample": self.total("state_update_ops") / s,
            "lut_ops_per_sample": self.total("lut_ops") / s,
            "messages_per_sample": self.total("messages") / s,
            "hops_per_sample": self.total("hops") / s,
            "partial_messages_per_sample": self.total("partial_messages") / s,
            "saturations": float(self.total("saturations")),
            "cores_used": float(self.cores_used),
        }

    # ---- serialisation ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "samples": self.samples,
            "steps_per_sample": self.steps_per_sample,
            "cores_used": self.cores_used,
            "layers": [lc.to_dict() for lc in self.layers],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunCounts:
        if not isinstance(d, dict):
            raise ArtifactError(f"run counts must be an object, got {type(d).__name__}")
        if d.get("format", FORMAT) != FORMAT:
            raise ArtifactError(f"run counts: format '{d.get('format')}' is not '{FORMAT}'")
        if d.get("version", VERSION) not in READABLE_VERSIONS:
            raise ArtifactError(f"run counts: version {d.get('version')} is not supported (expected one of "
                                f"{READABLE_VERSIONS})")
        unknown = sorted(set(d) - {"format", "version", "samples", "steps_per_sample", "cores_used", "layers"})
        if unknown:
            raise ArtifactError(f"run counts: unknown key(s) {', '.join(unknown)}")
        for req in ("samples", "steps_per_sample", "layers"):
            if req not in d:
                raise ArtifactError(f"run counts: missing key '{req}'")
        layers: Iterable[Any] = d["layers"]
        try:
            return cls(
                layers=tuple(LayerCounts.from_dict(x) for x in layers),
                samples=d["samples"],
                steps_per_sample=d["steps_per_sample"],
                cores_used=d.get("cores_used", 0),
            )
        except (TypeError, ValueError) as e:
            raise ArtifactError(f"run counts: {e}") from None
