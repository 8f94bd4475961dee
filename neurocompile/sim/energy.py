"""Energy and latency estimates from activity counts, driven only by the target's constants.

Three layers of honesty are reported side by side (docs/energy.md explains each):

(a) **Per-event target model.** Dynamic energy is the sum over events of count x energy per event, all taken
    from the target file::

        E_dyn = n_ac * synaptic_op_pj + n_mac * synaptic_op_graded_pj
              + n_active * neuron_update_pj + (n_comp - n_active) * neuron_update_inactive_pj
              + n_state * state_update_op_pj + n_lut * lut_op_pj
              + n_msg_local * spike_within_tile_pj + (n_msg - n_msg_local) * message_out_pj
              + (n_hops - n_hops_ns) * hop_ew_pj + n_hops_ns * hop_ns_pj

    Static energy is static_power_w x chips_used x (latency per step x steps), where chips_used =
    ceil(cores_used / cores_per_chip): only the chips holding the model are charged (the static energy of
    every chip of the system is reported next to it).

    Latency per step follows Loihi's time-step model: each core processes its synaptic operations and
    compartment updates sequentially, cores work in parallel, then messages cross the mesh and a barrier
    ends the step::

        t_step = max_c(busy_c) + mean message path (hops x ns per hop) + barrier_ns

    busy_c is core c's event count per step x time per event. Counts are per-run totals, so busy_c is the
    average over steps (the max over cores of averages; a step with a burst can take longer).

(b) **The papers' convention**: 4.6 pJ per MAC and 0.9 pJ per AC, counting the mixing (synaptic) layers only,
    as SpikingSSMs does, and the same convention counting the SSM state updates as MACs too.

(c) **The same float model on a conventional processor**: float MACs x MAC energy, with and without fetching
    each weight from SRAM, and the ratio to (a).

Every figure in the report is per sample unless its name says otherwise.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from neurocompile.sim.counters import LayerCounts, RunCounts
from neurocompile.target import Target

__all__ = ["LayerEnergy", "CoreLoad", "EnergyReport", "estimate", "layer_dynamic_pj", "layer_busy_ns"]

PJ = 1e-12
NS = 1e-9

DYNAMIC_CATEGORIES = ("synaptic", "neuron", "state_update", "lut", "message", "hop")


def layer_dynamic_pj(lc: LayerCounts, target: Target) -> dict[str, float]:
    """Dynamic energy (pJ, whole run) of one layer by category, from the target's per-event constants."""
    e = target.energy
    inactive = max(lc.compartment_updates - lc.neuron_updates, 0)
    return {
        "synaptic": lc.synops_effective_ac * e.synaptic_op_pj + lc.synops_effective_mac * e.synaptic_op_graded_pj,
        "neuron": lc.neuron_updates * e.neuron_update_pj + inactive * e.neuron_update_inactive_pj,
        "state_update": lc.state_update_ops * e.state_update_op_pj,
        "lut": lc.lut_ops * e.lut_op_pj,
        "message": lc.messages_local * e.spike_within_tile_pj + (lc.messages - lc.messages_local) * e.message_out_pj,
        "hop": (lc.hops - lc.hops_ns) * e.hop_ew_pj + lc.hops_ns * e.hop_ns_pj,
    }


def layer_busy_ns(lc: LayerCounts, target: Target) -> float:
    """Core time (ns, whole run) the layer's own work takes, executed sequentially on one core."""
    t = target.timing
    inactive = max(lc.compartment_updates - lc.neuron_updates, 0)
    return (
        lc.synops_effective_ac * t.synaptic_op_ns
        + lc.synops_effective_mac * t.synaptic_op_graded_ns
        + lc.neuron_updates * t.neuron_update_ns
        + inactive * t.neuron_update_inactive_ns
        + lc.state_update_ops * t.state_update_op_ns
        + lc.lut_ops * t.lut_op_ns
    )


@dataclass(frozen=True)
class LayerEnergy:
    """One layer's share of the estimate. Energies in J per sample, counts per sample."""

    name: str
    kind: str
    neurons: int
    cores: tuple[int, ...]
    energy_j: float  # dynamic energy of this layer per sample
    energy_share: float  # fraction of the total dynamic energy
    synaptic_j: float
    neuron_j: float
    state_update_j: float
    lut_j: float
    message_j: float
    hop_j: float
    synaptic_ops: float  # effective (MAC + AC) per sample
    synaptic_ops_dense: float
    neuron_updates: float  # active updates per sample
    compartment_updates: float
    state_update_ops: float
    lut_ops: float
    spikes: float
    graded_messages: float
    messages: float
    hops: float
    spike_rate: float  # binary spikes per neuron per step
    busy_ns_per_step: float  # this layer's core time per step, summed over its cores


@dataclass(frozen=True)
class CoreLoad:
    """One core's work per step. ``virtual`` cores (negative ids) stand for unplaced layers."""

    core: int
    busy_ns_per_step: float
    utilisation: float  # busy time / step latency
    layers: tuple[str, ...]
    virtual: bool = False


@dataclass(frozen=True)
class EnergyReport:
    """Energy and latency estimate of one run on one target (see module docstring for the model)."""

    target: str
    target_display_name: str
    is_estimate: bool
    complete: bool
    estimate_basis: str
    samples: int
    steps_per_sample: int
    cores_used: int
    chips_used: int
    chips_in_system: int
    energy_per_sample_j: float  # dynamic + static (chips used)
    dynamic_energy_j: float  # per sample
    static_energy_j: float  # per sample, chips used
    static_energy_all_chips_j: float  # per sample, every chip of the system powered
    dynamic_breakdown_j: dict[str, float]  # per sample, by event category
    latency_per_step_s: float
    latency_per_sample_s: float
    latency_breakdown_ns: dict[str, float]  # per step: compute (max core), noc, barrier
    critical_core: int | None
    layers: tuple[LayerEnergy, ...]
    cores: tuple[CoreLoad, ...]
    conventions: dict[str, Any]
    conventional_processor: dict[str, Any]
    constants: tuple[dict[str, Any], ...]  # the target constants this estimate used, with sources

    @property
    def estimate_statement(self) -> str:
        """One line stating what the numbers rest on, for every report format."""
        if self.is_estimate:
            return f"{self.target_display_name} energy is an ESTIMATE: {self.estimate_basis}"
        return f"{self.target_display_name} energy from per-operation constants: {self.estimate_basis}"

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready dict (tuples become lists); key order is irrelevant (writers sort keys)."""

        def conv(x: Any) -> Any:
            if dataclasses.is_dataclass(x) and not isinstance(x, type):
                return {f.name: conv(getattr(x, f.name)) for f in dataclasses.fields(x)}
            if isinstance(x, (list, tuple)):
                return [conv(v) for v in x]
            if isinstance(x, dict):
                return {str(k): conv(v) for k, v in x.items()}
            return x

        out = conv(self)
        out["estimate_statement"] = self.estimate_statement
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EnergyReport:
        """Rebuild a report from :meth:`to_dict` output (e.g. a report JSON); keys it does not know are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(names - set(d))
        if missing:
            raise ValueError(f"energy report dict is missing key(s): {', '.join(missing)}")
        kw = {k: d[k] for k in names}
        kw["layers"] = tuple(
            LayerEnergy(**{f.name: (tuple(x[f.name]) if f.name == "cores" else x[f.name])
                           for f in dataclasses.fields(LayerEnergy)})
            for x in d["layers"]
        )
        kw["cores"] = tuple(
            CoreLoad(**{f.name: (tuple(x[f.name]) if f.name == "layers" else x[f.name])
                        for f in dataclasses.fields(CoreLoad) if f.name in x})
            for x in d["cores"]
        )
        kw["constants"] = tuple(dict(c) for c in d["constants"])
        return cls(**kw)


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def estimate(counts: RunCounts, target: Target, float_macs_per_sample: int | float | None = None) -> EnergyReport:
    """Estimate energy per sample and latency of ``counts`` on ``target`` (constants from the target only).

    ``float_macs_per_sample``: MACs of the float model for the conventional-processor comparison; when None,
    the dense synaptic operations plus the SSM state-update operations of the counts are used.
    """
    if counts.samples <= 0 or counts.steps_per_sample <= 0:
        raise ValueError(f"energy estimate needs at least one sample and one step "
                         f"(got samples={counts.samples}, steps_per_sample={counts.steps_per_sample})")
    s = counts.samples
    total_steps = counts.total_steps

    # ---- (a) per-event dynamic energy --------------------------------------------------------------------
    per_layer_pj = [layer_dynamic_pj(lc, target) for lc in counts.layers]
    breakdown = {k: sum(d[k] for d in per_layer_pj) * PJ / s for k in DYNAMIC_CATEGORIES}
    dynamic_j = sum(breakdown.values())

    # ---- latency: per-core busy time per step -------------------------------------------------------------
    busy: dict[int, float] = {}
    on_core: dict[int, list[str]] = {}
    virtual: set[int] = set()
    layer_busy_step: list[float] = []
    next_virtual = -1
    for lc in counts.layers:
        t_ns = layer_busy_ns(lc, target)
        layer_busy_step.append(t_ns / total_steps)
        shares = lc.core_shares()
        if not shares:  # unplaced: assume it gets its own cores, filled to the compartment limit
            n = max(1, math.ceil(lc.neurons / target.core.compartments))
            shares = {}
            for _ in range(n):
                shares[next_virtual] = 1.0 / n
                virtual.add(next_virtual)
                next_virtual -= 1
        for core, share in shares.items():
            busy[core] = busy.get(core, 0.0) + share * t_ns / total_steps
            names = on_core.setdefault(core, [])
            if lc.name not in names:
                names.append(lc.name)

    compute_ns = max(busy.values(), default=0.0)
    critical = max(busy, key=lambda c: (busy[c], -c)) if busy else None
    msgs = counts.total("messages")
    hops_ns_axis = counts.total("hops_ns")
    hops_ew_axis = counts.total("hops") - hops_ns_axis
    t = target.timing
    noc_ns = (hops_ew_axis * t.hop_ew_ns + hops_ns_axis * t.hop_ns_ns) / msgs if msgs else 0.0
    step_ns = compute_ns + noc_ns + t.barrier_ns
    latency_step_s = step_ns * NS
    latency_sample_s = latency_step_s * counts.steps_per_sample

    n_placed = len(counts.core_ids())
    cores_used = max(counts.cores_used, n_placed) + len(virtual)
    chips_used = max(1, math.ceil(cores_used / target.system.cores_per_chip))
    static_j = target.energy.static_power_w * chips_used * latency_sample_s
    static_all_j = target.energy.static_power_w * target.system.chips * latency_sample_s
    total_j = dynamic_j + static_j

    layers = []
    for lc, pj, b_step in zip(counts.layers, per_layer_pj, layer_busy_step):
        e_j = sum(pj.values()) * PJ / s
        layers.append(
            LayerEnergy(
                name=lc.name,
                kind=lc.kind,
                neurons=lc.neurons,
                cores=lc.core_ids,
                energy_j=e_j,
                energy_share=e_j / dynamic_j if dynamic_j > 0 else 0.0,
                synaptic_j=pj["synaptic"] * PJ / s,
                neuron_j=pj["neuron"] * PJ / s,
                state_update_j=pj["state_update"] * PJ / s,
                lut_j=pj["lut"] * PJ / s,
                message_j=pj["message"] * PJ / s,
                hop_j=pj["hop"] * PJ / s,
                synaptic_ops=lc.synops_effective / s,
                synaptic_ops_dense=lc.synops_dense / s,
                neuron_updates=lc.neuron_updates / s,
                compartment_updates=lc.compartment_updates / s,
                state_update_ops=lc.state_update_ops / s,
                lut_ops=lc.lut_ops / s,
                spikes=lc.spikes / s,
                graded_messages=lc.graded_messages / s,
                messages=lc.messages / s,
                hops=lc.hops / s,
                spike_rate=lc.spike_rate,
                busy_ns_per_step=b_step,
            )
        )

    cores = tuple(
        CoreLoad(
            core=c,
            busy_ns_per_step=busy[c],
            utilisation=busy[c] / step_ns if step_ns > 0 else 0.0,
            layers=tuple(on_core[c]),
            virtual=c in virtual,
        )
        for c in sorted(busy, key=lambda c: (c < 0, abs(c)))
    )

    # ---- (b) the papers' MAC/AC convention ------------------------------------------------------------
    cv = target.convention
    dense = counts.total("synops_dense") / s
    n_ac = counts.total("synops_effective_ac") / s
    n_mac = counts.total("synops_effective_mac") / s
    n_state = counts.total("state_update_ops") / s
    ann_mix = dense * cv.mac_pj * PJ
    snn_mix = (n_ac * cv.ac_pj + n_mac * cv.mac_pj) * PJ
    state_j = n_state * cv.mac_pj * PJ
    conventions = {
        "mac_pj": cv.mac_pj,
        "ac_pj": cv.ac_pj,
        "mixing_only": {
            "description": "SpikingSSMs-style count: synaptic (mixing) operations only; the SSM state recurrence "
                           "is not counted. ANN = dense synaptic ops as MACs; SNN = binary-input ops as ACs + "
                           "graded-input ops as MACs.",
            "ann_macs": dense,
            "snn_acs": n_ac,
            "snn_macs": n_mac,
            "ann_energy_j": ann_mix,
            "snn_energy_j": snn_mix,
            "ratio_ann_over_snn": _ratio(ann_mix, snn_mix),
        },
        "with_state_updates": {
            "description": "Same convention, also counting each SSM state-update multiply-add as a MAC on both "
                           "sides (the recurrence runs in the ANN and the SNN alike).",
            "state_update_macs": n_state,
            "ann_energy_j": ann_mix + state_j,
            "snn_energy_j": snn_mix + state_j,
            "ratio_ann_over_snn": _ratio(ann_mix + state_j, snn_mix + state_j),
        },
    }

    # ---- (c) the float model on a conventional processor ----------------------------------------------------
    cp = target.conventional
    if float_macs_per_sample is None:
        macs = dense + n_state
        macs_source = "derived from the counts: dense synaptic ops + SSM state-update ops per sample"
    else:
        macs = float(float_macs_per_sample)
        macs_source = "given: MACs of the float model per sample"
    sram_per_mac_pj = cp.sram_access_pj * cp.weight_bits / cp.sram_word_bits
    conv_j = macs * cp.float_mac_pj * PJ
    conv_fetch_j = macs * (cp.float_mac_pj + sram_per_mac_pj) * PJ
    conventional = {
        "name": cp.name,
        "float_macs_per_sample": macs,
        "macs_source": macs_source,
        "mac_pj": cp.float_mac_pj,
        "sram_pj_per_mac": sram_per_mac_pj,
        "energy_per_sample_j": conv_j,
        "energy_with_weight_fetch_per_sample_j": conv_fetch_j,
        "ratio_vs_target": _ratio(conv_j, total_j),
        "ratio_with_weight_fetch_vs_target": _ratio(conv_fetch_j, total_j),
    }

    used_sections = ("energy", "timing", "convention", "conventional")
    used_keys = {"system.chips", "system.cores_per_chip", "core.compartments"}
    constants = tuple(
        c._asdict() for c in target.constants() if c.key.split(".")[0] in used_sections or c.key in used_keys
    )

    return EnergyReport(
        target=target.name,
        target_display_name=target.display_name,
        is_estimate=target.is_estimate,
        complete=target.complete,
        estimate_basis=target.estimate_basis,
        samples=s,
        steps_per_sample=counts.steps_per_sample,
        cores_used=cores_used,
        chips_used=chips_used,
        chips_in_system=target.system.chips,
        energy_per_sample_j=total_j,
        dynamic_energy_j=dynamic_j,
        static_energy_j=static_j,
        static_energy_all_chips_j=static_all_j,
        dynamic_breakdown_j=breakdown,
        latency_per_step_s=latency_step_s,
        latency_per_sample_s=latency_sample_s,
        latency_breakdown_ns={"compute_ns": compute_ns, "noc_ns": noc_ns, "barrier_ns": t.barrier_ns},
        critical_core=critical,
        layers=tuple(layers),
        cores=cores,
        conventions=conventions,
        conventional_processor=conventional,
        constants=constants,
    )
