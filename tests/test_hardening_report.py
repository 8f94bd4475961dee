"""The CLI's JSON follows docs/report-schema.md: ``schema`` version, ``metrics``, every layer, per-sample predictions.

Reproduces the defect that ``simulate --json`` and ``report --json`` wrote their own ad-hoc documents (no
``schema``, no ``metrics``, only the spiking layers, ``activity`` a list) and that ``report --json --html``
could be interrupted between the two files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from neurocompile import api
from neurocompile.cli import main
from neurocompile.report.json_report import REPORT_SCHEMA, SIMULATE_SCHEMA

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "report-schema.md").read_text()


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def documented_keys(section: str) -> set[str]:
    """Top-level keys listed in the first table of a section of docs/report-schema.md."""
    body = DOC.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    table = body.split("| key |", 1)[1].split("\n\n", 1)[0]
    keys = set()
    for row in table.splitlines():
        first = row.split("|")[1] if row.startswith("|") else ""
        keys |= set(re.findall(r"`(\w+)`", first))
    assert len(keys) >= 8, f"could not read the key table of section {section!r}"
    return keys


@pytest.fixture
def artifact(tiny_artifact) -> Path:
    """A one-layer spiking SSM exported for loihi2 (conftest.py)."""
    return tiny_artifact


@pytest.mark.slow
def test_simulate_json_follows_the_schema(artifact, tmp_path):
    js = tmp_path / "s.json"
    r = run("simulate", artifact, "--limit", "12", "--json", js, "--predictions")
    assert r.exit_code == 0, r.output
    doc = json.loads(js.read_text())
    assert doc["schema"] == SIMULATE_SCHEMA
    missing = documented_keys("1. `simulate` JSON") - set(doc)
    assert not missing, f"documented keys missing from simulate --json: {missing}"
    assert {"spikes_per_sample", "spike_rate", "synops_dense_per_sample"} <= set(doc["metrics"])
    names = [layer["name"] for layer in doc["layers"]]
    assert "decoder" in names and "encoder" in names, names  # not only the spiking layers
    assert all({"name", "kind", "spikes", "spike_rate", "neurons"} <= set(layer) for layer in doc["layers"])
    preds, labels = np.array(doc["predictions"]), np.array(doc["labels"])
    assert preds.shape == labels.shape == (12,)
    assert doc["accuracy"] == pytest.approx(float(np.mean(preds == labels)))


@pytest.mark.slow
def test_report_json_follows_the_schema_and_rerenders(artifact, tmp_path):
    js, html = tmp_path / "r.json", tmp_path / "r.html"
    r = run("report", artifact, "--limit", "6", "--json", js, "--html", html, "--predictions")
    assert r.exit_code == 0, r.output
    doc = json.loads(js.read_text())
    assert doc["schema"] == REPORT_SCHEMA
    missing = documented_keys("2. `report` JSON") - set(doc) - {"float_accuracy"}  # present only when given
    assert not missing, f"documented keys missing from report --json: {missing}"
    assert isinstance(doc["activity"], dict) and {"metrics", "layers"} <= set(doc["activity"])
    assert "decoder" in [layer["name"] for layer in doc["activity"]["layers"]]
    assert len(doc["predictions"]) == 6 and len(doc["labels"]) == 6
    assert "data:image/png;base64," in html.read_text()
    from neurocompile.report import render_html

    assert "<html" in render_html(doc)  # the JSON alone re-renders the report (counts are inside)


@pytest.mark.slow
def test_report_interrupted_leaves_both_old_files(artifact, tmp_path, monkeypatch):
    js, html = tmp_path / "r.json", tmp_path / "r.html"
    js.write_text("old json")
    html.write_text("old html")
    import neurocompile.report as report_pkg

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(report_pkg, "render_html", interrupted)
    r = run("report", artifact, "--limit", "2", "--json", js, "--html", html)
    assert r.exit_code == 130, r.output
    assert js.read_text() == "old json" and html.read_text() == "old html"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r.json"]


@pytest.mark.slow
def test_simulate_without_predictions_has_none(artifact):
    out = api.simulate(artifact, limit=3, console=False, compare_float=False)
    assert "predictions" not in out and out["float_accuracy"] is None
