"""Hardware targets: typed, sourced descriptions of Loihi-style chips, read from ``neurocompile/targets/*.toml``.

Hardware is data. Every number the compiler, the simulator and the energy model use about a chip lives in a
target file, and every numeric constant there carries its unit and its source::

    synaptic_op_pj = { value = 23.6, unit = "pJ", source = "Davies et al. 2018, Table 2" }

The loader rejects (with :class:`~neurocompile.errors.TargetError`, one line naming the file and the key):
a missing key, an unknown key, a value of the wrong type, a numeric constant given as a bare number or
without a non-empty ``source``, a unit other than the one the schema expects, a non-positive value where
the schema requires a positive one, a value outside its range (:data:`LIMITS`: widths the 64-bit simulator
can hold, plausible sizes; energies, times and powers at most :data:`MAX_PHYSICAL`), and TOML syntax errors
(including duplicate keys).

The schema is the dataclasses below: one per TOML section, one field per key. Numeric fields are declared
with :func:`_num` (unit, sign rule, meaning); text and flags with :func:`_txt` / :func:`_flag`. Code reads
plain numbers (``target.core.compartments``, ``target.energy.synaptic_op_pj``); the unit and source of each
are kept alongside and listed by :meth:`Target.constants`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import tomli

import neurocompile
from neurocompile.errors import TargetError

__all__ = [
    "Constant",
    "TargetInfo",
    "SystemSpec",
    "CoreSpec",
    "PrecisionSpec",
    "EnergySpec",
    "TimingSpec",
    "ConventionSpec",
    "ConventionalSpec",
    "Target",
    "SECTIONS",
    "FAMILIES",
    "targets_dir",
    "list_targets",
    "load_target",
    "target_from_dict",
]

FAMILIES = ("loihi1", "loihi2")

#: a target name: it names artifacts (``model.<name>``) and is checked again when an artifact is loaded
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def _num(unit: str, doc: str, *, sign: str = "positive") -> Any:
    """A numeric constant: TOML ``{ value, unit, source }``; ``sign`` is 'positive', 'nonnegative' or 'any'."""
    return field(metadata={"kind": "num", "unit": unit, "sign": sign, "doc": doc})


def _txt(doc: str) -> Any:
    """A non-empty string."""
    return field(metadata={"kind": "txt", "doc": doc})


def _flag(doc: str) -> Any:
    """A TOML boolean."""
    return field(metadata={"kind": "flag", "doc": doc})


# --------------------------------------------------------------------------------------------------------------
# Schema: one frozen dataclass per section. Field order is the order of reports and manifests.
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetInfo:
    """``[target]``: identity and honesty flags of the target."""

    name: str = _txt("short name, e.g. 'loihi2' (the file stem)")
    display_name: str = _txt("human-readable name, e.g. 'Loihi 2'")
    description: str = _txt("one-line description of the chip or system")
    family: str = _txt("chip family: 'loihi1' or 'loihi2'")
    complete: bool = _flag("true only when every chip feature the compiler may use is described")
    estimate: bool = _flag("true when the energy/latency constants are estimates or stand-ins")
    estimate_basis: str = _txt("what the energy/latency numbers rest on, naming the sources")


@dataclass(frozen=True)
class SystemSpec:
    """``[system]``: how many chips and cores, and the on-chip mesh."""

    name: str = _txt("system (board) name, e.g. 'Oheo Gulch'")
    chips: int = _num("chip", "chips in the system")
    cores_per_chip: int = _num("core", "usable neurocores per chip")
    cores_per_tile: int = _num("core", "neurocores sharing one mesh router (tile)")
    mesh_x: int = _num("tile", "tiles along the east-west axis of one chip's mesh")
    mesh_y: int = _num("tile", "tiles along the north-south axis of one chip's mesh")
    x86_cores_per_chip: int = _num("core", "embedded x86 management cores per chip")

    @property
    def cores_total(self) -> int:
        """Usable neurocores in the whole system."""
        return self.chips * self.cores_per_chip


@dataclass(frozen=True)
class CoreSpec:
    """``[core]``: resources of one neurocore."""

    compartments: int = _num("compartment", "neuron compartments (state variables) per core")
    input_axons: int = _num("axon", "input axons (distinct incoming routes) per core")
    output_axons: int = _num("axon", "output axons (distinct outgoing routes) per core")
    synapse_memory_bits: int = _num("bit", "synapse memory per core (shared with neuron state when shared_memory)")
    shared_memory: bool = _flag("true when neuron state and synapses share the core's SRAM")
    memory_note: str = _txt("how the core's memory is organised, and any conflict between sources")

    @property
    def neurons(self) -> int:
        """Alias of ``compartments`` (one neuron = one compartment in neurocompile's mapping)."""
        return self.compartments


@dataclass(frozen=True)
class PrecisionSpec:
    """``[precision]``: integer widths and ranges the chip imposes."""

    weight_bits: int = _num("bit", "signed weight mantissa width")
    weight_exp_min: int = _num("exponent", "smallest shared weight exponent", sign="any")
    weight_exp_max: int = _num("exponent", "largest shared weight exponent", sign="any")
    state_bits: int = _num("bit", "neuron state (voltage, SSM mode state) width, signed")
    current_bits: int = _num("bit", "synaptic current u width, signed")
    accumulator_bits: int = _num("bit", "dendritic (synaptic input) accumulator width, signed")
    graded_message_bits: int = _num("bit", "payload of one message; 1 = binary spikes only")
    decay_bits: int = _num("bit", "fractional bits of decay/rotation coefficients (unity = 2^decay_bits)")
    threshold_mant_bits: int = _num("bit", "threshold mantissa width (unsigned)")
    threshold_shift: int = _num("bit", "left shift applied to the threshold mantissa", sign="nonnegative")
    bias_mant_bits: int = _num("bit", "bias mantissa width, signed")
    bias_exp_bits: int = _num("bit", "bias exponent width")
    max_delay_steps: int = _num("step", "largest synaptic delay", sign="nonnegative")


@dataclass(frozen=True)
class EnergySpec:
    """``[energy]``: energy per event (pJ) and static power per chip (W)."""

    synaptic_op_pj: float = _num("pJ", "one synaptic look-up, dense synapse format (driven by a binary spike)")
    synaptic_op_sparse_pj: float = _num("pJ", "one synaptic look-up, sparse synapse format")
    synaptic_op_conv_pj: float = _num("pJ", "one synaptic look-up, convolutional (shared-weight) synapse format")
    synaptic_op_graded_pj: float = _num("pJ", "one synaptic operation driven by a graded (multi-bit) message")
    neuron_access_pj: float = _num("pJ", "one compartment serviced in one step (paid by every compartment, every step)")
    neuron_update_pj: float = _num("pJ", "compartment updated (event arrived or non-zero state), on top of the access")
    spike_out_pj: float = _num("pJ", "one output spike or message generated by a compartment (soma)")
    state_update_op_pj: float = _num("pJ", "one multiply-add of an SSM mode recurrence (beyond the update)")
    lut_op_pj: float = _num("pJ", "one look-up-table evaluation (non-native nonlinearity)")
    message_out_pj: float = _num("pJ", "one message sent to one destination core (the sender's own core included)")
    message_in_pj: float = _num("pJ", "one message received by a core", sign="nonnegative")
    hop_ew_pj: float = _num("pJ", "one east-west mesh hop of a message")
    hop_ns_pj: float = _num("pJ", "one north-south mesh hop of a message")
    static_power_w: float = _num("W", "static (leakage + idle) power of one powered chip")


@dataclass(frozen=True)
class TimingSpec:
    """``[timing]``: time per event (ns), for the time-step latency model."""

    synaptic_op_ns: float = _num("ns", "one synaptic look-up, dense format")
    synaptic_op_sparse_ns: float = _num("ns", "one synaptic look-up, sparse format")
    synaptic_op_conv_ns: float = _num("ns", "one synaptic look-up, convolutional format")
    synaptic_op_graded_ns: float = _num("ns", "one graded-message synaptic operation")
    neuron_access_ns: float = _num("ns", "one compartment serviced (every compartment, every step)")
    neuron_update_ns: float = _num("ns", "one compartment updated, on top of the access")
    spike_out_ns: float = _num("ns", "one output spike generated by a compartment")
    state_update_op_ns: float = _num("ns", "one SSM mode multiply-add")
    lut_op_ns: float = _num("ns", "one look-up-table evaluation")
    message_out_ns: float = _num("ns", "one message generated by the sending core's axon unit")
    message_in_ns: float = _num("ns", "one message received by the destination core's axon unit")
    hop_ew_ns: float = _num("ns", "one east-west mesh hop")
    hop_ns_ns: float = _num("ns", "one north-south mesh hop")
    link_buffer_messages: int = _num("message", "messages one mesh link buffers (back-pressure in cycle mode)")
    barrier_ns: float = _num("ns", "end-of-step barrier synchronisation with 1 tile used")
    barrier_2_tiles_ns: float = _num("ns", "barrier with 2 to 3 tiles used")
    barrier_4_tiles_ns: float = _num("ns", "barrier with 4 to barrier_max_tiles - 1 tiles used")
    barrier_max_ns: float = _num("ns", "barrier with barrier_max_tiles or more tiles used")
    barrier_max_tiles: int = _num("tile", "tiles used from which the barrier is barrier_max_ns")

    def barrier_for_tiles(self, tiles: int) -> float:
        """Barrier (ns) of a step with ``tiles`` tiles used: a step function of the tile count (SANA-FE's table)."""
        if tiles >= self.barrier_max_tiles:
            return self.barrier_max_ns
        if tiles >= 4:
            return self.barrier_4_tiles_ns
        if tiles >= 2:
            return self.barrier_2_tiles_ns
        return self.barrier_ns


@dataclass(frozen=True)
class ConventionSpec:
    """``[convention]``: the operation-count convention of the spiking-network literature."""

    mac_pj: float = _num("pJ", "one multiply-accumulate (fp32 mult + add)")
    ac_pj: float = _num("pJ", "one accumulate (fp32 add)")


@dataclass(frozen=True)
class ConventionalSpec:
    """``[conventional]``: the same float model on a conventional processor."""

    name: str = _txt("what processor the figures describe")
    float_mac_pj: float = _num("pJ", "one float multiply-accumulate")
    sram_access_pj: float = _num("pJ", "one SRAM access of sram_word_bits")
    sram_word_bits: int = _num("bit", "width of one SRAM access")
    weight_bits: int = _num("bit", "bits of one float weight fetched per MAC")


SECTIONS: dict[str, type] = {
    "target": TargetInfo,
    "system": SystemSpec,
    "core": CoreSpec,
    "precision": PrecisionSpec,
    "energy": EnergySpec,
    "timing": TimingSpec,
    "convention": ConventionSpec,
    "conventional": ConventionalSpec,
}

_CONSTANT_KEYS = ("value", "unit", "source")

_INT64 = "the bit-exact simulator computes in 64-bit integers"
#: inclusive [low, high] of each constant that has a hard range, with why; keys not listed need only their sign
LIMITS: dict[str, tuple[float, float, str]] = {
    "system.chips": (1, 1 << 20, "a plausible system size"),
    "system.cores_per_chip": (1, 1 << 16, "a plausible chip"),
    "system.cores_per_tile": (1, 1 << 10, "a plausible tile"),
    "system.mesh_x": (1, 1 << 10, "a plausible mesh"),
    "system.mesh_y": (1, 1 << 10, "a plausible mesh"),
    "system.x86_cores_per_chip": (1, 1 << 10, "a plausible chip"),
    "core.compartments": (1, 1 << 24, "a plausible core"),
    "core.input_axons": (1, 1 << 24, "a plausible core"),
    "core.output_axons": (1, 1 << 24, "a plausible core"),
    "core.synapse_memory_bits": (1, 1 << 40, "a plausible core"),
    "precision.weight_bits": (1, 16, _INT64),
    "precision.weight_exp_min": (-16, 16, _INT64),
    "precision.weight_exp_max": (-16, 16, _INT64),
    "precision.state_bits": (2, 32, _INT64),
    "precision.current_bits": (2, 32, _INT64),
    "precision.accumulator_bits": (2, 32, _INT64),
    "precision.graded_message_bits": (1, 32, _INT64),
    "precision.decay_bits": (1, 24, _INT64),
    "precision.threshold_mant_bits": (1, 32, _INT64),
    "precision.threshold_shift": (0, 16, _INT64),
    "precision.bias_mant_bits": (1, 32, _INT64),
    "precision.bias_exp_bits": (1, 6, _INT64),
    "precision.max_delay_steps": (0, 1 << 16, "a plausible delay line"),
    "conventional.sram_word_bits": (1, 4096, "a plausible memory word"),
    "conventional.weight_bits": (1, 64, "a plausible float format"),
}
#: upper bound of every energy (pJ), time (ns) and power (W) constant: far above any real chip, below overflow
MAX_PHYSICAL = 1e12


class Constant(NamedTuple):
    """One sourced numeric constant of a target, as listed in reports."""

    key: str  # dotted, e.g. 'energy.synaptic_op_pj'
    value: int | float
    unit: str
    source: str


@dataclass(frozen=True)
class Target:
    """A loaded, validated target. Sections are typed; ``constants()`` gives each number's unit and source."""

    info: TargetInfo
    system: SystemSpec
    core: CoreSpec
    precision: PrecisionSpec
    energy: EnergySpec
    timing: TimingSpec
    convention: ConventionSpec
    conventional: ConventionalSpec
    path: Path
    sha256: str  # of the file's bytes
    _constants: tuple[Constant, ...] = field(repr=False, compare=False, default=())

    @property
    def target(self) -> TargetInfo:
        """The ``[target]`` section (alias of ``info``, named as in the TOML file)."""
        return self.info

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def display_name(self) -> str:
        return self.info.display_name

    @property
    def family(self) -> str:
        return self.info.family

    @property
    def complete(self) -> bool:
        return self.info.complete

    @property
    def is_estimate(self) -> bool:
        return self.info.estimate

    @property
    def estimate_basis(self) -> str:
        return self.info.estimate_basis

    def constants(self) -> list[Constant]:
        """Every numeric constant as (key, value, unit, source), in schema order."""
        return list(self._constants)

    def constant(self, key: str) -> Constant:
        """The constant with dotted ``key`` (e.g. 'energy.synaptic_op_pj'); KeyError if there is none."""
        for c in self._constants:
            if c.key == key:
                return c
        raise KeyError(key)

    def to_dict(self) -> dict[str, Any]:
        """Deterministic snapshot (an artifact's ``target.json``): ``name``, the source file's ``sha256`` and every
        section's keys, numbers as ``{value, unit, source}``; :func:`target_from_dict` reads it back."""
        out: dict[str, Any] = {"name": self.name, "sha256": self.sha256}
        by_key = {c.key: c for c in self._constants}
        for section in SECTIONS:
            obj = getattr(self, "info" if section == "target" else section)
            sec: dict[str, Any] = {}
            for f in dataclasses.fields(obj):
                key = f"{section}.{f.name}"
                if key in by_key:
                    c = by_key[key]
                    sec[f.name] = {"value": c.value, "unit": c.unit, "source": c.source}
                else:
                    sec[f.name] = getattr(obj, f.name)
            out[section] = sec
        return out


# --------------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------------


def targets_dir() -> Path:
    """The shipped targets: ``neurocompile/targets/`` inside the package (installed as package data)."""
    return Path(neurocompile.__file__).resolve().parent / "targets"


def list_targets() -> list[str]:
    """Names of the targets shipped in ``targets/`` (file stems), sorted."""
    d = targets_dir()
    if not d.is_dir():
        return []
    return sorted(p.stem for p in d.glob("*.toml") if p.is_file())


def load_target(name_or_path: str | Path) -> Target:
    """Load a target by name (``'loihi2'``, looked up in ``targets/``) or by an explicit path to a .toml file.

    Raises TargetError: unknown name (listing the known ones), missing file, or malformed file.
    """
    if isinstance(name_or_path, Path) or str(name_or_path).endswith(".toml") or "/" in str(name_or_path):
        path = Path(name_or_path)
        if not path.is_file():
            raise TargetError(f"target file not found: {path}")
        return _load_file(path)
    name = str(name_or_path).strip().lower().replace("_", "-")
    known = list_targets()
    if name not in known:
        listed = ", ".join(known) if known else f"(none found in {targets_dir()})"
        raise TargetError(f"unknown target '{name_or_path}'; known targets: {listed}")
    return _load_file(targets_dir() / f"{name}.toml")


def target_from_dict(data: Any, where: Path) -> Target:
    """Rebuild a :class:`Target` from its :meth:`Target.to_dict` snapshot, checked by the same rules as a TOML file
    (every key, type, unit, source, sign and range; TargetError naming ``where`` and the key). The result's
    ``path`` is ``where``; its ``sha256`` is the one of the file the snapshot was taken from."""
    if not isinstance(data, dict):
        raise TargetError(f"{where}: expected a target snapshot (an object), got {_type_name(data)}")
    for key in data:
        if key not in SECTIONS and key not in ("name", "sha256"):
            raise _err(where, key, f"unknown key (expected name, sha256 and: {', '.join(SECTIONS)})")
    digest = data.get("sha256")
    if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise _err(where, "sha256", f"expected the SHA-256 hex digest of the target file, got {str(digest)[:80]!r}")
    target = _from_tables(where, data, digest)
    if data.get("name") != target.name:
        raise _err(where, "name", f"{str(data.get('name'))[:80]!r} differs from target.name {target.name!r}")
    return target


def _err(path: Path, key: str, problem: str) -> TargetError:
    return TargetError(f"{path}: key '{key}': {problem}")


def _type_name(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return "table"
    if isinstance(v, list):
        return "array"
    return type(v).__name__


def _load_file(path: Path) -> Target:
    try:
        raw_bytes = path.read_bytes()
    except OSError as e:
        raise TargetError(f"{path}: cannot read target file: {e.strerror or e}") from None
    try:
        raw = tomli.loads(raw_bytes.decode("utf-8"))
    except UnicodeDecodeError:
        raise TargetError(f"{path}: not UTF-8 text") from None
    except tomli.TOMLDecodeError as e:
        raise TargetError(f"{path}: TOML syntax error: {' '.join(str(e).split())}") from None

    for key in raw:
        if key not in SECTIONS:
            raise _err(path, key, f"unknown section (expected one of: {', '.join(SECTIONS)})")
    return _from_tables(path, raw, hashlib.sha256(raw_bytes).hexdigest(), resolve=True)


def _from_tables(path: Path, raw: dict[str, Any], digest: str, resolve: bool = False) -> Target:
    """The typed, checked target of ``raw`` (section -> table), read from ``path`` (messages, ``Target.path``)."""
    constants: list[Constant] = []
    parts: dict[str, Any] = {}
    for section, cls in SECTIONS.items():
        if section not in raw:
            raise _err(path, section, "missing section")
        table = raw[section]
        if not isinstance(table, dict):
            raise _err(path, section, f"wrong type: expected a table, got {_type_name(table)}")
        parts["info" if section == "target" else section] = _build_section(path, section, cls, table, constants)

    target = Target(**parts, path=path.resolve() if resolve else path, sha256=digest, _constants=tuple(constants))
    _cross_checks(path, target)
    return target


def _build_section(path: Path, section: str, cls: type, table: dict[str, Any], constants: list[Constant]) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in table:
        if key not in fields:
            raise _err(path, f"{section}.{key}", f"unknown key (expected one of: {', '.join(fields)})")
    values: dict[str, Any] = {}
    for name, f in fields.items():
        key = f"{section}.{name}"
        if name not in table:
            raise _err(path, key, "missing key")
        v = table[name]
        kind = f.metadata["kind"]
        if kind == "txt":
            if not isinstance(v, str):
                raise _err(path, key, f"wrong type: expected a string, got {_type_name(v)}")
            if not v.strip():
                raise _err(path, key, "empty string")
            values[name] = v
        elif kind == "flag":
            if not isinstance(v, bool):
                raise _err(path, key, f"wrong type: expected a boolean (true/false), got {_type_name(v)}")
            values[name] = v
        else:
            c = _constant(path, key, v, hints[name], f.metadata)
            constants.append(c)
            values[name] = c.value
    return cls(**values)


def _constant(path: Path, key: str, v: Any, typ: Any, meta: typing.Mapping[str, Any]) -> Constant:
    unit = meta["unit"]
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        raise _err(path, key, f"missing source: a numeric constant must be written "
                              f"{{ value = {v}, unit = \"{unit}\", source = \"...\" }}")
    if not isinstance(v, dict):
        raise _err(path, key, f"wrong type: expected an inline table {{ value, unit, source }}, got {_type_name(v)}")
    for k in v:
        if k not in _CONSTANT_KEYS:
            raise _err(path, f"{key}.{k}", "unknown key (a constant has only: value, unit, source)")
    if "source" not in v:
        raise _err(path, key, "missing source: every numeric constant needs a non-empty 'source'")
    source = v["source"]
    if not isinstance(source, str):
        raise _err(path, f"{key}.source", f"wrong type: expected a string, got {_type_name(source)}")
    if not source.strip():
        raise _err(path, key, "missing source: 'source' is empty")
    for k in ("value", "unit"):
        if k not in v:
            raise _err(path, f"{key}.{k}", "missing key")
    value = v["value"]
    if typ is int or typ == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _err(path, f"{key}.value", f"wrong type: expected an integer, got {_type_name(value)}")
    else:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _err(path, f"{key}.value", f"wrong type: expected a number, got {_type_name(value)}")
        if not math.isfinite(value):
            raise _err(path, f"{key}.value", f"not a finite number: {value}")
        value = float(value)
    if v["unit"] != unit:
        raise _err(path, f"{key}.unit", f"wrong unit '{v['unit']}', expected '{unit}'")
    sign = meta["sign"]
    if sign == "positive" and not value > 0:
        raise _err(path, f"{key}.value", f"non-positive value {value}: must be > 0")
    if sign == "nonnegative" and not value >= 0:
        raise _err(path, f"{key}.value", f"negative value {value}: must be >= 0")
    lo, hi, why = LIMITS.get(key, (-math.inf, MAX_PHYSICAL, "a plausible physical constant"))
    if not lo <= value <= hi:
        raise _err(path, f"{key}.value", f"{value:g} is out of range [{lo:g}, {hi:g}] ({why})" if
                   isinstance(value, float) else f"{value} is out of range [{lo}, {hi}] ({why})")
    return Constant(key, value, unit, source.strip())


def _cross_checks(path: Path, t: Target) -> None:
    if not NAME_RE.match(t.info.name):
        raise _err(path, "target.name", f"{t.info.name[:80]!r} is not a target name: use 1 to 64 lowercase letters, "
                                        "digits, '-' and '_', starting with a letter or digit")
    if t.info.family not in FAMILIES:
        raise _err(path, "target.family", f"unknown family '{t.info.family}' (expected one of: {', '.join(FAMILIES)})")
    if t.precision.weight_exp_min > t.precision.weight_exp_max:
        raise _err(path, "precision.weight_exp_min",
                   f"{t.precision.weight_exp_min} is greater than weight_exp_max {t.precision.weight_exp_max}")
    s = t.system
    if s.mesh_x * s.mesh_y * s.cores_per_tile < s.cores_per_chip:
        raise _err(path, "system.cores_per_chip",
                   f"{s.cores_per_chip} cores do not fit a {s.mesh_x} x {s.mesh_y} mesh "
                   f"of {s.cores_per_tile}-core tiles")
