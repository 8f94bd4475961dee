"""The artifact is self-contained: it stores the target it was compiled for (target.json), and simulate, report,
check and the Lava backend read that snapshot instead of reloading a name; report --target re-prices and says so."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from neurocompile import api
from neurocompile.artifact import dumps, load_artifact
from neurocompile.artifact_schema import TARGET_FILE
from neurocompile.cli import main
from neurocompile.errors import ArtifactError, TargetError
from neurocompile.fileio import sha256
from neurocompile.target import list_targets, load_target, target_from_dict


def run(*args: object) -> CliRunner.Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def rehash(art: Path, name: str) -> None:
    """Record the current hash of ``name`` in the manifest (a consistent edit, not a corrupt file)."""
    m = json.loads((art / "manifest.json").read_text())
    m["files"][name] = sha256(art / name)
    (art / "manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize("name", list_targets())
def test_snapshot_round_trips_every_shipped_target(name, tmp_path):
    t = load_target(name)
    back = target_from_dict(json.loads(dumps(t.to_dict())), tmp_path / TARGET_FILE)
    for section in ("info", "system", "core", "precision", "energy", "timing", "convention", "conventional"):
        assert getattr(back, section) == getattr(t, section), section
    assert back.constants() == t.constants() and back.sha256 == t.sha256
    assert back.path == tmp_path / TARGET_FILE


@pytest.mark.parametrize("edit,needle", [
    (lambda d: d["energy"]["synaptic_op_pj"].__setitem__("value", -1.0), "energy.synaptic_op_pj.value': non-positive"),
    (lambda d: d["precision"]["state_bits"].__setitem__("value", 99), "precision.state_bits.value': 99 is out of range"),
    (lambda d: d["energy"]["spike_out_pj"].__setitem__("unit", "J"), "energy.spike_out_pj.unit': wrong unit"),
    (lambda d: d["core"].pop("compartments"), "core.compartments': missing key"),
    (lambda d: d.__setitem__("extra", 1), "key 'extra': unknown key"),
    (lambda d: d.__setitem__("sha256", "x"), "key 'sha256'"),
    (lambda d: d.__setitem__("name", "loihi1"), "key 'name': 'loihi1' differs from target.name 'loihi2'"),
])
def test_snapshot_is_checked_like_a_target_file(edit, needle, tmp_path):
    d = load_target("loihi2").to_dict()
    edit(d)
    with pytest.raises(TargetError) as exc:
        target_from_dict(d, tmp_path / TARGET_FILE)
    assert needle in str(exc.value) and str(tmp_path / TARGET_FILE) in str(exc.value), str(exc.value)


@pytest.mark.parametrize("name", ["My Chip", "../evil", "-x", "a" * 65])
def test_a_target_name_must_be_usable_in_an_artifact(target_file, name):
    with pytest.raises(TargetError, match=r"key 'target.name': .* is not a target name"):
        load_target(target_file(name=name))


def test_export_stores_the_target_and_the_manifest_names_it(tiny_artifact):
    snap = json.loads((tiny_artifact / TARGET_FILE).read_text())
    assert snap == load_target("loihi2").to_dict()
    m = json.loads((tiny_artifact / "manifest.json").read_text())
    assert m["target"] == {"name": "loihi2"} and TARGET_FILE in m["files"]
    art = load_artifact(tiny_artifact)
    assert art.target == "loihi2" and art.target_spec.energy == load_target("loihi2").energy


@pytest.mark.parametrize("label,change,needle", [
    ("out of range", lambda d: d["system"]["chips"].__setitem__("value", 0), "system.chips.value': non-positive"),
    ("another name", lambda d: (d.__setitem__("name", "x1"), d["target"].__setitem__("name", "x1")),
     "target 'x1' differs from the manifest's target.name 'loihi2'"),
])
def test_a_bad_snapshot_is_one_line_naming_the_file(tiny_artifact, tmp_path, label, change, needle):
    art = tmp_path / "a.loihi2"
    shutil.copytree(tiny_artifact, art)
    d = json.loads((art / TARGET_FILE).read_text())
    change(d)
    (art / TARGET_FILE).write_text(dumps(d))
    rehash(art, TARGET_FILE)
    with pytest.raises(ArtifactError, match="re-export the model") as exc:
        load_artifact(art)
    assert needle in str(exc.value) and TARGET_FILE in str(exc.value), str(exc.value)
    r = run("simulate", art, "--limit", 2)
    assert r.exit_code == 2 and needle in r.output and len(r.output.strip().splitlines()) == 1, r.output


def test_an_artifact_of_the_previous_format_asks_for_a_re_export(tiny_artifact, tmp_path):
    art = tmp_path / "old.loihi2"
    shutil.copytree(tiny_artifact, art)
    m = json.loads((art / "manifest.json").read_text())
    m["format_version"] = 1  # what earlier versions wrote: the target only inside the manifest
    (art / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match="format version 1 .* re-export the model"):
        load_artifact(art)


@pytest.mark.slow
def test_custom_toml_target_works_after_the_file_is_deleted(tiny_model_file, target_file, tmp_path):
    custom = target_file(name="mychip", energy__synaptic_op_pj=47.2, timing__synaptic_op_ns=9.5)
    art = api.export(tiny_model_file, str(custom), out=tmp_path / "m.mychip", calibration_samples=32,
                     allow_precision_loss=True, console=False)
    custom.unlink()
    with pytest.raises(TargetError):
        load_target(custom)  # the file is gone: everything below reads the artifact's snapshot

    r = run("simulate", art, "--limit", 4, "--no-float", "--json", tmp_path / "sim.json")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "sim.json").read_text())["target"] == "mychip"
    r = run("check", art, "--json")
    assert r.exit_code == 0, r.output
    from neurocompile.backends.lava import lava_available

    if lava_available():  # the Lava backend's simulator counters are placed on the snapshot too
        r = run("simulate", art, "--limit", 1, "--no-float", "--backend", "lava")
        assert r.exit_code == 0 and "backend lava" in r.output, r.output
    r = run("report", art, "--limit", 4, "--json", tmp_path / "own.json", "--html", tmp_path / "own.html")
    assert r.exit_code == 0, r.output
    own = json.loads((tmp_path / "own.json").read_text())
    assert own["target"] == "mychip" and own["compiled_for"] == "mychip" and own["repriced"] is None
    assert "re-priced" not in r.output
    used = {c["key"]: c["value"] for c in own["constants"]}
    assert used["energy.synaptic_op_pj"] == 47.2  # the custom constants, not loihi2's

    # another target prices the same activity, and every format says so on one line
    line = "re-priced for loihi2; the artifact was compiled for mychip"
    r = run("report", art, "--limit", 4, "--target", "loihi2", "--json", tmp_path / "re.json",
            "--html", tmp_path / "re.html")
    assert r.exit_code == 0, r.output
    assert sum(line in out for out in r.output.splitlines()) == 1, r.output
    re_ = json.loads((tmp_path / "re.json").read_text())
    assert re_["target"] == "loihi2" and re_["compiled_for"] == "mychip" and re_["repriced"] == line
    assert re_["counts"] == own["counts"]  # same activity ...
    assert re_["energy_per_sample_j"] != own["energy_per_sample_j"]  # ... priced differently
    html = (tmp_path / "re.html").read_text()
    assert html.count(line) == 2  # the <title> and the heading
    assert line not in (tmp_path / "own.html").read_text()


def test_report_with_its_own_target_is_not_re_priced(tiny_artifact):
    from neurocompile.runs import pricing_target

    art = load_artifact(tiny_artifact)
    assert pricing_target(art, None) == (art.target_spec, None)
    assert pricing_target(art, "loihi2")[1] is None  # same name, same constants
    tgt, line = pricing_target(art, "loihi1")
    assert tgt.name == "loihi1" and line == "re-priced for loihi1; the artifact was compiled for loihi2"


def test_report_names_a_changed_file_of_the_same_name(tiny_artifact, target_file):
    from neurocompile.runs import pricing_target

    changed = target_file(energy__spike_out_pj=3.25)
    tgt, line = pricing_target(load_artifact(tiny_artifact), str(changed))
    assert tgt.energy.spike_out_pj == 3.25
    assert line is not None and line.startswith(f"re-priced for loihi2 from {changed}; the artifact was compiled "
                                                "for a different loihi2")


def test_a_bad_report_target_fails_before_the_run(tiny_artifact):
    r = run("report", tiny_artifact, "--target", "loihi9")
    assert r.exit_code == 2 and "unknown target 'loihi9'" in r.output and len(r.output.strip().splitlines()) == 1


def test_lava_backend_gets_the_artifacts_target(tiny_artifact, monkeypatch):
    import neurocompile.backends.lava as lava
    from neurocompile.runs import _run

    seen = {}

    def fake(graph, x, **kw):
        seen.update(kw)
        return "ran"

    monkeypatch.setattr(lava, "simulate_lava", fake)
    art = load_artifact(tiny_artifact)
    ds = api._dataset_for(art, None, 2)
    assert _run(art, ds, "lava", 1, None, progress=False) == "ran"
    assert seen["target"] is art.target_spec
