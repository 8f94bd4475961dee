"""Energy and latency estimates from activity counts, driven only by the target's constants.

Three layers of honesty are reported side by side (docs/energy.md explains each):

(a) **Per-event target model**, at the granularity of SANA-FE's Loihi model. Chip dynamic energy (pJ) is::

        E_chip = n_access * neuron_access_pj + n_updated * neuron_update_pj + n_spike_out * spike_out_pj
               + sum_format n_lookup[format] * synaptic_op[format]_pj + n_graded * synaptic_op_graded_pj
               + n_state * state_update_op_pj + n_lut * lut_op_pj
               + n_msg * message_out_pj + n_msg_in * message_in_pj
               + n_hop_ew * hop_ew_pj + n_hop_ns * hop_ns_pj
               + n_partial * (spike_out_pj + message_out_pj + message_in_pj)
               + n_partial_hop_ew * hop_ew_pj + n_partial_hop_ns * hop_ns_pj

    where n_partial counts the graded messages of partial-sum compartments to their somas (a neuron over the
    core's input axons, :mod:`neurocompile.mapping.partials`; ``LayerCounts.partial_messages``), priced as graded
    messages (generated, sent, received, routed) in the *partial* category of the *network* group.

    grouped as SANA-FE groups it: *soma* (access, update, spike out, SSM state update, LUT), *synapse* (look-ups)
    and *network* (messages, hops). Messages go to every destination core (the sender's own core included);
    the host input's messages enter the mesh at the host port and are chip energy. Host-side nodes (input
    quantisation, a decoder after pooling) are **host work**: their synaptic ops are priced at the conventional
    processor's float MAC and listed apart; they never get chip cores.

    Static energy is static_power_w x chips_used x (latency per step x steps), chips_used =
    ceil(cores_used / cores_per_chip) (the static energy of every chip of the system is reported next to it).

    Latency per step (analytical, the fast default): each core has a soma timeline (its compartments' access,
    update and spike-out times plus message generation, message_out_ns each) and a receive timeline (message_in_ns
    per message received plus the synaptic look-ups); the two run in parallel, cores run in parallel, then the
    mean message path and the barrier for the tiles used::

        t_step = max_c max(soma_c, recv_c) + mean hops x ns per hop + t_partial + barrier(tiles used)

    t_partial is the extra message phase of partial sums (0 without them): a soma integrates only after its
    partial compartments' graded messages arrived, so the step waits one generation, one message out, the mean
    hops of a partial message and one message in (spike_out_ns + message_out_ns + mean partial hops x ns per hop
    + message_in_ns); the somas' cores also receive them (message_in_ns each on their receive timeline).

    Counts are run totals, so soma_c and recv_c are per-step averages: a burst on one core in one step is
    averaged away. :mod:`neurocompile.cost.timing` schedules every step event by event (``--timing cycle``).

(b) **The papers' convention**: 4.6 pJ per MAC and 0.9 pJ per AC, counting the feature-mixing (QDense) layers only,
    as SpikingSSMs does (the SSM's input and readout ops and its recurrence are left out), and the same convention
    counting the SSM state updates and the SSM input/readout ops as MACs too.

(c) **The same float model on a conventional processor**: float MACs x MAC energy, with and without fetching
    each weight from SRAM, and the ratio to (a). :func:`float_macs_per_sample` counts the float graph's MACs,
    nodes after a sequence-end node (the decoder after pooling) once per sample.

Every figure in the report is per sample unless its name says otherwise.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from neurocompile.sim.counters import LayerCounts, RunCounts
from neurocompile.target import Target

__all__ = ["LayerEnergy", "CoreLoad", "EnergyReport", "estimate", "layer_dynamic_pj", "layer_host_pj", "layer_busy_ns",
           "layer_soma_ns", "layer_recv_ns", "float_macs_per_sample", "CATEGORY_GROUPS", "partial_message_pj",
           "partial_pj", "partial_phase_ns"]

PJ = 1e-12
NS = 1e-9

DYNAMIC_CATEGORIES = ("synaptic", "neuron", "state_update", "lut", "message", "hop", "partial")
#: SANA-FE's grouping of the chip's dynamic energy (partial-sum messages are network traffic).
CATEGORY_GROUPS = {"synapse": ("synaptic",), "soma": ("neuron", "state_update", "lut"),
                   "network": ("message", "hop", "partial")}


def _lookup_pj(lc: LayerCounts, e: Any) -> float:
    """Energy (pJ) of one binary-driven look-up in the layer's synapse format."""
    return {"sparse": e.synaptic_op_sparse_pj, "conv": e.synaptic_op_conv_pj}.get(lc.synapse_format,
                                                                                e.synaptic_op_pj)


def _lookup_ns(lc: LayerCounts, t: Any) -> float:
    return {"sparse": t.synaptic_op_sparse_ns, "conv": t.synaptic_op_conv_ns}.get(lc.synapse_format,
                                                                                t.synaptic_op_ns)


def _spikes_out(lc: LayerCounts) -> int:
    """Spikes and graded messages generated by the layer's compartments (host nodes and synapse-only denses
    generate none on the chip)."""
    if lc.role in ("host", "synapse") or (lc.role == "" and lc.neurons == 0):
        return 0
    return lc.spikes + lc.graded_messages


def layer_dynamic_pj(lc: LayerCounts, target: Target) -> dict[str, float]:
    """Chip dynamic energy (pJ, whole run) of one layer by category; a host layer's compute is not chip energy
    (see :func:`layer_host_pj`), only its messages into the chip are."""
    e = target.energy
    host = lc.role == "host"
    syn = 0.0 if host else (lc.synops_effective_ac * _lookup_pj(lc, e)
                            + lc.synops_effective_mac * e.synaptic_op_graded_pj)
    return {
        "synaptic": syn,
        "neuron": 0.0 if host else (lc.compartment_updates * e.neuron_access_pj + lc.neuron_updates * e.neuron_update_pj
                                    + _spikes_out(lc) * e.spike_out_pj),
        "state_update": 0.0 if host else lc.state_update_ops * e.state_update_op_pj,
        "lut": 0.0 if host else lc.lut_ops * e.lut_op_pj,
        "message": lc.messages * e.message_out_pj + lc.messages_in * e.message_in_pj,
        "hop": (lc.hops - lc.hops_ns) * e.hop_ew_pj + lc.hops_ns * e.hop_ns_pj,
        "partial": partial_pj(lc, target),
    }


def partial_message_pj(target: Target) -> float:
    """Energy (pJ) of one partial-sum message before routing: generated, sent and received as a graded message."""
    e = target.energy
    return e.spike_out_pj + e.message_out_pj + e.message_in_pj


def partial_pj(lc: LayerCounts, target: Target) -> float:
    """Energy (pJ, whole run) of the layer's partial-sum messages: count x :func:`partial_message_pj` plus their
    east-west and north-south hops."""
    e = target.energy
    return (lc.partial_messages * partial_message_pj(target) + (lc.partial_hops - lc.partial_hops_ns) * e.hop_ew_pj
            + lc.partial_hops_ns * e.hop_ns_pj)


def partial_phase_ns(counts: RunCounts, target: Target) -> float:
    """The extra message phase of a step with partial sums (ns, module doc); 0 when the run sends none."""
    n = counts.total("partial_messages")
    if not n:
        return 0.0
    t = target.timing
    ns_hops = counts.total("partial_hops_ns")
    ew_hops = counts.total("partial_hops") - ns_hops
    return t.spike_out_ns + t.message_out_ns + (ew_hops * t.hop_ew_ns + ns_hops * t.hop_ns_ns) / n + t.message_in_ns


def layer_host_pj(lc: LayerCounts, target: Target) -> float:
    """Host work (pJ, whole run) of a host-side layer: its multiply-adds at the conventional processor's float MAC."""
    if lc.role != "host":
        return 0.0
    return (lc.synops_dense + lc.state_update_ops + lc.lut_ops) * target.conventional.float_mac_pj


def layer_soma_ns(lc: LayerCounts, target: Target) -> float:
    """Soma-timeline time (ns, whole run) of the layer on its cores: access, update, spike out, SSM and LUT ops,
    and the generation of its messages."""
    if lc.role == "host":
        return 0.0
    t = target.timing
    return (lc.compartment_updates * t.neuron_access_ns + lc.neuron_updates * t.neuron_update_ns
            + _spikes_out(lc) * t.spike_out_ns + lc.state_update_ops * t.state_update_op_ns
            + lc.lut_ops * t.lut_op_ns + lc.messages * t.message_out_ns)


def layer_recv_ns(lc: LayerCounts, target: Target) -> float:
    """Receive-timeline time (ns, whole run) on the layer's cores: messages received and synaptic look-ups."""
    if lc.role == "host":
        return 0.0
    t = target.timing
    return ((lc.messages_in + lc.partial_messages) * t.message_in_ns + lc.synops_effective_ac * _lookup_ns(lc, t)
            + lc.synops_effective_mac * t.synaptic_op_graded_ns)


def layer_busy_ns(lc: LayerCounts, target: Target) -> float:
    """Core time (ns, whole run) of the layer's own work (soma and receive timelines added)."""
    return layer_soma_ns(lc, target) + layer_recv_ns(lc, target)


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
    host_j: float = 0.0  # host work per sample (host-side layers only)
    on_chip: bool = True  # False for host-side layers (no chip cores)
    partial_j: float = 0.0  # partial-sum messages to this layer's somas, with their hops, per sample
    partial_messages: float = 0.0  # per sample


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
    categories_j: dict[str, float] = dataclasses.field(default_factory=dict)  # per sample: synapse, soma, network
    host: dict[str, Any] = dataclasses.field(default_factory=dict)  # host work: layers, ops, energy per sample
    tiles_used: int = 0  # tiles holding a used core, the host port's tile included
    timing: dict[str, Any] = dataclasses.field(default_factory=dict)  # timing mode and per-step latency stats

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
        optional = {f.name for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING
                    or f.default_factory is not dataclasses.MISSING}
        missing = sorted(names - set(d) - optional)
        if missing:
            raise ValueError(f"energy report dict is missing key(s): {', '.join(missing)}")
        kw = {k: d[k] for k in names if k in d}
        kw["layers"] = tuple(
            LayerEnergy(**{f.name: (tuple(x[f.name]) if f.name == "cores" else x[f.name])
                           for f in dataclasses.fields(LayerEnergy) if f.name in x})
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


def float_macs_per_sample(graph: Any, steps: int) -> int:
    """MACs per sample of a float (or integer) graph on a conventional processor: dense layers, SSM recurrences
    (4 per complex mode plus 2 for its input) and readouts at every step; nodes after a sequence-end node (a
    decoder after pooling) once per sample."""
    once = graph.sequence_end_nodes()
    macs = 0
    for name, node in graph.items():
        op = node.op
        if op in ("Affine", "QDense"):
            m = int(node.weight.size)
        elif op in ("ModeBank", "QModeBank"):
            m = 4 * (node.out_size() // 2) + 2 * (node.out_size() // 2)
        elif op in ("ModeReadout", "QModeReadout"):
            m = 2 * node.out_size() * (node.C.shape[1] if op == "ModeReadout" else node.c_re.shape[1]) + node.out_size()
        else:
            continue
        macs += m * (1 if name in once else steps)
    return int(macs)


def estimate(counts: RunCounts, target: Target, float_macs_per_sample: int | float | None = None,
             tiles_used: int | None = None, timing: dict[str, Any] | None = None) -> EnergyReport:
    """Estimate energy per sample and latency of ``counts`` on ``target`` (constants from the target only).

    ``float_macs_per_sample``: MACs of the float model for the conventional-processor comparison; when None,
    the dense synaptic operations plus the SSM state-update operations of the counts are used.
    ``tiles_used``: tiles the placement uses (host port included), which sets the barrier; when None, derived
    from the cores used (ids 0..n-1 fill tiles in order). ``timing``: a cycle-mode result of
    :func:`neurocompile.cost.timing.cycle_timing` (its per-step latencies replace the analytical ones).
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
    categories = {g: sum(breakdown[k] for k in ks) for g, ks in CATEGORY_GROUPS.items()}
    host_pj = [layer_host_pj(lc, target) for lc in counts.layers]

    # ---- latency: per-core soma and receive time per step ---------------------------------------------------
    soma: dict[int, float] = {}
    recv: dict[int, float] = {}
    on_core: dict[int, list[str]] = {}
    virtual: set[int] = set()
    layer_busy_step: list[float] = []
    next_virtual = -1
    for lc in counts.layers:
        s_ns, r_ns = layer_soma_ns(lc, target), layer_recv_ns(lc, target)
        layer_busy_step.append((s_ns + r_ns) / total_steps)
        if lc.role == "host":
            continue
        shares = lc.core_shares()
        if not shares:  # unplaced: assume it gets its own cores, filled to the compartment limit
            n = max(1, math.ceil(lc.neurons / target.core.compartments))
            shares = {}
            for _ in range(n):
                shares[next_virtual] = 1.0 / n
                virtual.add(next_virtual)
                next_virtual -= 1
        for core, share in shares.items():
            soma[core] = soma.get(core, 0.0) + share * s_ns / total_steps
            recv[core] = recv.get(core, 0.0) + share * r_ns / total_steps
            names = on_core.setdefault(core, [])
            if lc.name not in names:
                names.append(lc.name)
    busy = {c: max(soma[c], recv[c]) for c in soma}
    compute_ns = max(busy.values(), default=0.0)
    critical = max(busy, key=lambda c: (busy[c], -c)) if busy else None
    msgs = counts.total("messages")
    hops_ns_axis = counts.total("hops_ns")
    hops_ew_axis = counts.total("hops") - hops_ns_axis
    t = target.timing
    noc_ns = (hops_ew_axis * t.hop_ew_ns + hops_ns_axis * t.hop_ns_ns) / msgs if msgs else 0.0

    n_placed = len(counts.core_ids())
    cores_used = max(counts.cores_used, n_placed) + len(virtual)
    if tiles_used is None:
        tiles_used = max(1, math.ceil(cores_used / target.system.cores_per_tile))
    barrier_ns = t.barrier_for_tiles(tiles_used)
    partial_ns = partial_phase_ns(counts, target)
    step_ns = compute_ns + noc_ns + partial_ns + barrier_ns
    timing_out: dict[str, Any] = {"mode": "analytical", "latency_per_step_ns": step_ns}
    if timing is not None:
        timing_out = dict(timing)
        step_ns = float(timing["mean_ns"])
        critical = timing.get("critical_core", critical)
    latency_step_s = step_ns * NS
    latency_sample_s = latency_step_s * counts.steps_per_sample

    chips_used = max(1, math.ceil(cores_used / target.system.cores_per_chip))
    static_j = target.energy.static_power_w * chips_used * latency_sample_s
    static_all_j = target.energy.static_power_w * target.system.chips * latency_sample_s
    total_j = dynamic_j + static_j

    layers = []
    for lc, pj, b_step, h_pj in zip(counts.layers, per_layer_pj, layer_busy_step, host_pj):
        e_j = sum(pj.values()) * PJ / s
        layers.append(
            LayerEnergy(
                name=lc.name, kind=lc.kind, neurons=lc.neurons, cores=lc.core_ids, energy_j=e_j,
                energy_share=e_j / dynamic_j if dynamic_j > 0 else 0.0,
                synaptic_j=pj["synaptic"] * PJ / s, neuron_j=pj["neuron"] * PJ / s,
                state_update_j=pj["state_update"] * PJ / s, lut_j=pj["lut"] * PJ / s,
                message_j=pj["message"] * PJ / s, hop_j=pj["hop"] * PJ / s,
                synaptic_ops=lc.synops_effective / s, synaptic_ops_dense=lc.synops_dense / s,
                neuron_updates=lc.neuron_updates / s, compartment_updates=lc.compartment_updates / s,
                state_update_ops=lc.state_update_ops / s, lut_ops=lc.lut_ops / s, spikes=lc.spikes / s,
                graded_messages=lc.graded_messages / s, messages=lc.messages / s, hops=lc.hops / s,
                spike_rate=lc.spike_rate, busy_ns_per_step=b_step, host_j=h_pj * PJ / s,
                on_chip=lc.role != "host", partial_j=pj["partial"] * PJ / s, partial_messages=lc.partial_messages / s,
            )
        )

    cores = tuple(
        CoreLoad(core=c, busy_ns_per_step=busy[c], utilisation=busy[c] / step_ns if step_ns > 0 else 0.0,
                 layers=tuple(on_core[c]), virtual=c in virtual)
        for c in sorted(busy, key=lambda c: (c < 0, abs(c)))
    )
    host_layers = [lc for lc in counts.layers if lc.role == "host"]
    host = {
        "description": "host-side nodes (input quantisation, decoders after pooling): run on the host, priced "
                       "at the conventional processor's float MAC; no chip cores",
        "layers": [lc.name for lc in host_layers],
        "ops_per_sample": sum(lc.synops_dense + lc.state_update_ops + lc.lut_ops for lc in host_layers) / s,
        "energy_per_sample_j": sum(host_pj) * PJ / s,
        "mac_pj": target.conventional.float_mac_pj,
        "host_to_chip_messages_per_sample": sum(lc.messages for lc in host_layers) / s,
    }

    # ---- (b) the papers' MAC/AC convention: feature-mixing (QDense) layers only ------------------------------
    cv = target.convention
    mixing = [lc for lc in counts.layers if lc.kind in ("QDense", "Affine")]
    ssm_io = [lc for lc in counts.layers if lc.kind in ("QModeBank", "QModeReadout")]
    dense = sum(lc.synops_dense for lc in mixing) / s
    n_ac = sum(lc.synops_effective_ac for lc in mixing) / s
    n_mac = sum(lc.synops_effective_mac for lc in mixing) / s
    io_dense = sum(lc.synops_dense for lc in ssm_io) / s
    io_eff = sum(lc.synops_effective for lc in ssm_io) / s
    n_state = counts.total("state_update_ops") / s
    ann_mix = dense * cv.mac_pj * PJ
    snn_mix = (n_ac * cv.ac_pj + n_mac * cv.mac_pj) * PJ
    extra_ann = (n_state + io_dense) * cv.mac_pj * PJ
    extra_snn = (n_state + io_eff) * cv.mac_pj * PJ
    conventions = {
        "mac_pj": cv.mac_pj,
        "ac_pj": cv.ac_pj,
        "mixing_only": {
            "description": "SpikingSSMs-style count: the feature-mixing (dense) layers only; the SSM's input and "
                           "readout ops and its recurrence are not counted. ANN = dense synaptic ops as MACs; "
                           "SNN = binary-input ops as ACs + graded-input ops as MACs.",
            "ann_macs": dense, "snn_acs": n_ac, "snn_macs": n_mac,
            "ann_energy_j": ann_mix, "snn_energy_j": snn_mix, "ratio_ann_over_snn": _ratio(ann_mix, snn_mix),
        },
        "with_state_updates": {
            "description": "Same convention, also counting each SSM state-update multiply-add and the SSM's input "
                           "and readout ops as MACs (dense on the ANN side, non-zero-driven on the SNN side).",
            "state_update_macs": n_state, "ssm_io_macs_ann": io_dense, "ssm_io_macs_snn": io_eff,
            "ann_energy_j": ann_mix + extra_ann, "snn_energy_j": snn_mix + extra_snn,
            "ratio_ann_over_snn": _ratio(ann_mix + extra_ann, snn_mix + extra_snn),
        },
    }

    # ---- (c) the float model on a conventional processor ----------------------------------------------------
    cp = target.conventional
    if float_macs_per_sample is None:
        macs = counts.total("synops_dense") / s + n_state
        macs_source = "derived from the counts: dense synaptic ops + SSM state-update ops per sample"
    else:
        macs = float(float_macs_per_sample)
        macs_source = "given: MACs of the float model per sample (nodes after pooling once per sample)"
    sram_per_mac_pj = cp.sram_access_pj * cp.weight_bits / cp.sram_word_bits
    conv_j = macs * cp.float_mac_pj * PJ
    conv_fetch_j = macs * (cp.float_mac_pj + sram_per_mac_pj) * PJ
    conventional = {
        "name": cp.name, "float_macs_per_sample": macs, "macs_source": macs_source, "mac_pj": cp.float_mac_pj,
        "sram_pj_per_mac": sram_per_mac_pj, "energy_per_sample_j": conv_j,
        "energy_with_weight_fetch_per_sample_j": conv_fetch_j,
        "ratio_vs_target": _ratio(conv_j, total_j), "ratio_with_weight_fetch_vs_target": _ratio(conv_fetch_j, total_j),
    }

    used_sections = ("energy", "timing", "convention", "conventional")
    used_keys = {"system.chips", "system.cores_per_chip", "core.compartments"}
    constants = tuple(
        c._asdict() for c in target.constants() if c.key.split(".")[0] in used_sections or c.key in used_keys
    )

    return EnergyReport(
        target=target.name, target_display_name=target.display_name, is_estimate=target.is_estimate,
        complete=target.complete, estimate_basis=target.estimate_basis, samples=s,
        steps_per_sample=counts.steps_per_sample, cores_used=cores_used, chips_used=chips_used,
        chips_in_system=target.system.chips, energy_per_sample_j=total_j, dynamic_energy_j=dynamic_j,
        static_energy_j=static_j, static_energy_all_chips_j=static_all_j, dynamic_breakdown_j=breakdown,
        latency_per_step_s=latency_step_s, latency_per_sample_s=latency_sample_s,
        latency_breakdown_ns={"compute_ns": compute_ns, "noc_ns": noc_ns, "partial_ns": partial_ns,
                              "barrier_ns": barrier_ns},
        critical_core=critical, layers=tuple(layers), cores=cores, conventions=conventions,
        conventional_processor=conventional, constants=constants, categories_j=categories, host=host,
        tiles_used=int(tiles_used), timing=timing_out,
    )
