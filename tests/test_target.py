"""Target files: all load, every number is sourced, malformed files fail with one clear TargetError line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import tomli

from neurocompile.errors import TargetError
from neurocompile.target import SECTIONS, Target, list_targets, load_target, targets_dir

SHIPPED = ["hala-point", "kapoho-point", "loihi1", "loihi2"]


def _paths() -> list[Path]:
    return sorted(targets_dir().glob("*.toml"))


def test_list_targets_names_the_four_shipped_targets():
    assert list_targets() == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_every_target_loads_with_typed_attributes(name):
    t = load_target(name)
    assert isinstance(t, Target)
    assert t.name == name
    assert isinstance(t.precision.state_bits, int) and t.precision.state_bits == 24
    assert isinstance(t.core.compartments, int) and t.core.compartments > 0
    assert isinstance(t.energy.synaptic_op_pj, float) and t.energy.synaptic_op_pj > 0
    assert isinstance(t.system.chips, int)
    assert t.complete is False  # no target claims to be complete yet
    assert t.is_estimate is True and t.estimate_basis.strip()
    # constants() lists every numeric field, each with a unit and a non-empty source
    consts = t.constants()
    assert consts and all(c.source.strip() and c.unit for c in consts)
    assert t.constant("energy.synaptic_op_pj").value == t.energy.synaptic_op_pj
    assert t.target is t.info and t.target.name == name  # [target] section, named as in the file
    assert t.core.neurons == t.core.compartments


def test_load_by_explicit_path_and_alias():
    p = targets_dir() / "loihi2.toml"
    assert load_target(p).name == "loihi2"
    assert load_target(str(p)).name == "loihi2"
    assert load_target("kapoho_point").name == "kapoho-point"


def test_system_facts_and_conflicts_are_written_down():
    assert load_target("hala-point").system.chips == 1152
    assert load_target("hala-point").system.cores_total == 140544
    kp = load_target("kapoho-point")
    assert kp.system.chips == 8
    src = kp.constant("system.chips").source
    assert "4" in src and "CONFLICT" in src.upper()
    l2 = load_target("loihi2")
    assert l2.core.shared_memory is True
    assert "192" in l2.core.memory_note and "128" in l2.core.memory_note
    assert "16" in l2.constant("precision.graded_message_bits").source  # netx default noted
    assert load_target("loihi1").precision.graded_message_bits == 1


@pytest.mark.parametrize("path", _paths(), ids=lambda p: p.stem)
def test_every_numeric_constant_in_raw_toml_has_a_source(path):
    """Walk the raw TOML: every number must sit in a table with a non-empty 'source' next to it."""
    raw = tomli.loads(path.read_text())

    def walk(node, trail):
        if isinstance(node, dict):
            if "value" in node:
                assert isinstance(node.get("source"), str) and node["source"].strip(), trail
                assert isinstance(node.get("unit"), str) and node["unit"].strip(), trail
                assert not isinstance(node["value"], bool), trail
                return
            for k, v in node.items():
                walk(v, trail + [k])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, trail + [str(i)])
        else:
            assert isinstance(node, (str, bool)), f"bare value at {'.'.join(trail)}: {node!r}"

    walk(raw, [])


@pytest.mark.parametrize("path", _paths(), ids=lambda p: p.stem)
def test_file_has_fixme_markers_and_complete_flag(path):
    text = path.read_text()
    assert "FIXME" in text
    assert re.search(r"^complete\s*=", text, re.M)


def test_to_dict_is_deterministic_and_json_serialisable():
    a = load_target("loihi2").to_dict()
    b = load_target("loihi2").to_dict()
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert set(SECTIONS) <= set(a)
    assert a["energy"]["synaptic_op_pj"]["source"]
    assert len(a["sha256"]) == 64


def test_unknown_target_lists_known_ones():
    with pytest.raises(TargetError) as e:
        load_target("loihi9")
    msg = str(e.value)
    assert "loihi9" in msg
    for name in SHIPPED:
        assert name in msg
    assert "\n" not in msg


def test_missing_explicit_path():
    with pytest.raises(TargetError, match="not found"):
        load_target("/nonexistent/dir/x.toml")


# ---- malformed files ---------------------------------------------------------------------------------------

BASE = (targets_dir() / "loihi2.toml").read_text()
# the synaptic-op line as the shipped file writes it (its value and source change with the energy model)
SYN = next(line for line in BASE.splitlines() if line.startswith("synaptic_op_pj = { value = "))


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    return p


def _error(tmp_path: Path, text: str) -> str:
    p = _write(tmp_path, text)
    with pytest.raises(TargetError) as e:
        load_target(p)
    msg = str(e.value)
    assert "bad.toml" in msg and "\n" not in msg
    return msg


def test_base_text_is_valid(tmp_path):
    assert SYN in BASE
    assert load_target(_write(tmp_path, BASE)).name == "loihi2"


def test_missing_key(tmp_path):
    msg = _error(tmp_path, BASE.replace(SYN, ""))
    assert "energy.synaptic_op_pj" in msg and "missing key" in msg


def test_missing_section(tmp_path):
    start = BASE.index("[convention]")
    end = BASE.index("[conventional]")
    msg = _error(tmp_path, BASE[:start] + BASE[end:])
    assert "'convention'" in msg and "missing section" in msg


def test_unknown_key(tmp_path):
    msg = _error(tmp_path, BASE.replace(SYN, SYN + '\nfrobnicate_pj = { value = 1.0, unit = "pJ", source = "x" }'))
    assert "energy.frobnicate_pj" in msg and "unknown key" in msg


def test_unknown_key_inside_constant(tmp_path):
    bad = BASE.replace('value = 35.5, unit = "pJ", source', 'value = 35.5, unit = "pJ", note = "x", source', 1)
    msg = _error(tmp_path, bad)
    assert "energy.synaptic_op_pj.note" in msg and "unknown key" in msg


def test_unknown_section(tmp_path):
    msg = _error(tmp_path, BASE + '\n[extras]\nfoo = "bar"\n')
    assert "extras" in msg and "unknown section" in msg


def test_missing_source(tmp_path):
    msg = _error(tmp_path, BASE.replace(SYN, 'synaptic_op_pj = { value = 35.5, unit = "pJ" }'))
    assert "energy.synaptic_op_pj" in msg and "missing source" in msg


def test_empty_source(tmp_path):
    msg = _error(tmp_path, BASE.replace(SYN, 'synaptic_op_pj = { value = 35.5, unit = "pJ", source = "  " }'))
    assert "energy.synaptic_op_pj" in msg and "source" in msg


def test_bare_number_is_rejected_as_missing_source(tmp_path):
    msg = _error(tmp_path, BASE.replace(SYN, "synaptic_op_pj = 23.6"))
    assert "energy.synaptic_op_pj" in msg and "missing source" in msg


def test_wrong_type_of_value(tmp_path):
    msg = _error(tmp_path, BASE.replace('{ value = 35.5, unit = "pJ"', '{ value = "35.5", unit = "pJ"', 1))
    assert "energy.synaptic_op_pj.value" in msg and "wrong type" in msg


def test_float_for_integer_field(tmp_path):
    msg = _error(tmp_path, BASE.replace('compartments = { value = 8192,', 'compartments = { value = 8192.5,'))
    assert "core.compartments.value" in msg and "expected an integer" in msg


def test_wrong_type_of_flag(tmp_path):
    msg = _error(tmp_path, BASE.replace("shared_memory = true", 'shared_memory = "yes"'))
    assert "core.shared_memory" in msg and "wrong type" in msg


def test_wrong_unit(tmp_path):
    msg = _error(tmp_path, BASE.replace('value = 35.5, unit = "pJ"', 'value = 23.6, unit = "nJ"', 1))
    assert "energy.synaptic_op_pj.unit" in msg and "nJ" in msg


def test_non_positive_value(tmp_path):
    msg = _error(tmp_path, BASE.replace('value = 35.5, unit = "pJ"', 'value = 0.0, unit = "pJ"', 1))
    assert "energy.synaptic_op_pj" in msg and "non-positive" in msg


def test_negative_exponent_is_allowed_but_order_checked(tmp_path):
    msg = _error(tmp_path, BASE.replace('weight_exp_max = { value = 7,', 'weight_exp_max = { value = -9,'))
    assert "weight_exp_min" in msg


def test_unknown_family(tmp_path):
    msg = _error(tmp_path, BASE.replace('family = "loihi2"', 'family = "truenorth"'))
    assert "target.family" in msg and "truenorth" in msg


def test_toml_syntax_error(tmp_path):
    msg = _error(tmp_path, BASE.replace("[energy]", "[energy\n", 1))
    assert "TOML syntax error" in msg


def test_duplicate_key_is_a_syntax_error(tmp_path):
    msg = _error(tmp_path, BASE.replace(SYN, SYN + "\n" + SYN))
    assert "TOML syntax error" in msg
