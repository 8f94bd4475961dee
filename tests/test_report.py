"""Reports: terminal text, deterministic JSON round trips, self-contained HTML with embedded PNG figures."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from neurocompile.cost.energy import estimate
from neurocompile.report import (
    REPORT_SCHEMA,
    SIMULATE_SCHEMA,
    dumps,
    load_json,
    render_html,
    render_report_text,
    report_json,
    simulate_json,
    write_html,
    write_json,
)
from neurocompile.report.json_report import normalize
from neurocompile.sim.counters import LayerCounts, RunCounts
from neurocompile.target import load_target

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _counts() -> RunCounts:
    a = LayerCounts(name="enc", kind="QDense", core_ids=(0,), neurons=32, synapses=512, graded_messages=400,
                    payload_bits=400 * 24, synops_dense=512 * 40, synops_effective_mac=5000,
                    neuron_updates=900, compartment_updates=32 * 40, messages=400, hops=800, hops_ns=200,
                    steps=40, samples=2)
    b = LayerCounts(name="ssm", kind="QModeBank", core_ids=(1, 2), neurons=128, synapses=0,
                    graded_messages=2000, payload_bits=2000 * 24, neuron_updates=4000,
                    compartment_updates=128 * 40, state_update_ops=64 * 4 * 40, messages=100, hops=100, steps=40,
                    samples=2)
    c = LayerCounts(name="lif", kind="QLIF", core_ids=(3,), neurons=32, spikes=210, synops_dense=32 * 32 * 40,
                    synops_effective_ac=700, neuron_updates=1100, compartment_updates=32 * 40, steps=40, samples=2)
    return RunCounts(layers=[a, b, c], samples=2, steps_per_sample=20)


@pytest.fixture(scope="module")
def report():
    return estimate(_counts(), load_target("loihi2"))


def _raster():
    rng = np.random.default_rng(0)
    return {"enc": (rng.random((20, 32)) < 0.3).astype(np.int8), "lif": rng.random((20, 32)) < 0.1}


def test_terminal_report_states_the_estimate_and_lists_layers(report):
    text = render_report_text(report, _counts())
    assert "Loihi 2 energy is an ESTIMATE" in text
    for name in ("enc", "ssm", "lif"):
        assert name in text
    assert "latency per step" in text and "total" in text


def test_terminal_print_simulation_runs():
    import io

    from rich.console import Console

    from neurocompile.report import print_simulation

    buf = io.StringIO()
    print_simulation(_counts(), accuracy=0.875, float_accuracy=0.9, console=Console(file=buf, width=150))
    out = buf.getvalue()
    assert "87.50%" in out and "90.00%" in out and "lif" in out


def test_simulate_json_round_trips_and_is_deterministic(tmp_path):
    doc = simulate_json(_counts(), accuracy=0.875, float_accuracy=0.9, meta={"target": "loihi2"})
    p = write_json(tmp_path / "sim.json", doc)
    loaded = load_json(p)
    assert loaded == normalize(doc)
    assert loaded["schema"] == SIMULATE_SCHEMA
    assert loaded["accuracy"] == 0.875 and loaded["float_accuracy"] == 0.9 and loaded["samples"] == 2
    layer = loaded["layers"][2]
    assert layer["name"] == "lif" and layer["spikes"] == 210
    assert layer["spike_rate"] == pytest.approx(210 / (32 * 40))
    # byte-identical on a second write; keys sorted
    p2 = write_json(tmp_path / "sim2.json", simulate_json(_counts(), accuracy=0.875, float_accuracy=0.9,
                                                          meta={"target": "loihi2"}))
    assert p.read_bytes() == p2.read_bytes()
    assert list(json.loads(p.read_text())) == sorted(json.loads(p.read_text()))
    assert "float_accuracy" not in simulate_json(_counts())
    # the counts themselves round-trip through the JSON activity
    d = {k: v for k, v in loaded["layers"][0].items() if k in LayerCounts.__dataclass_fields__}
    assert LayerCounts.from_dict(d) == _counts().layers[0]


def test_report_json_round_trips(tmp_path, report):
    doc = report_json(report, _counts(), accuracy=0.5)
    p = write_json(tmp_path / "report.json", doc)
    loaded = load_json(p)
    assert loaded == normalize(doc)
    assert loaded["schema"] == REPORT_SCHEMA
    for key in ("target", "energy_per_sample_j", "latency_per_step_s", "latency_per_sample_s", "estimate_basis",
                "is_estimate", "layers", "conventions", "conventional_processor", "static_energy_j",
                "dynamic_energy_j", "activity"):
        assert key in loaded, key
    assert loaded["energy_per_sample_j"] == pytest.approx(report.energy_per_sample_j, rel=1e-11)
    assert [lay["name"] for lay in loaded["layers"]] == ["enc", "ssm", "lif"]
    assert os.stat(p).st_mode & 0o777 != 0o600  # not left with mkstemp's private mode


def test_json_float_formatting_and_non_finite():
    text = dumps({"b": 0.1 + 0.2, "a": float("nan"), "c": np.float32(1.5), "d": np.arange(3), "e": (1, 2)})
    assert text.index('"a"') < text.index('"b"')
    d = json.loads(text)
    assert d == {"a": None, "b": 0.3, "c": 1.5, "d": [0, 1, 2], "e": [1, 2]}
    assert text.endswith("\n")
    with pytest.raises(ValueError, match="clash"):
        simulate_json(_counts(), meta={"samples": 3})


def _pngs(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def test_html_is_self_contained_with_embedded_figures(tmp_path, report):
    p = write_html(tmp_path / "r" / "report.html", report, _counts(), raster=_raster(), accuracy=0.8)
    page = p.read_text()
    pngs = _pngs(page)
    assert len(pngs) == 4  # raster, energy bars, spike-rate bars, core heatmap
    assert all(png.startswith(PNG_MAGIC) and len(png) > 1000 for png in pngs)
    assert "Loihi 2 energy is an ESTIMATE" in page
    assert "<style>" in page and "http://" not in page and "https://" not in page
    assert "Davies et al. 2018" in page  # the sources table
    assert not list(tmp_path.joinpath("r").glob(".*tmp"))  # no temporary file left behind


def test_html_without_raster_and_custom_utilisation(report):
    page = render_html(report, core_utilisation={0: 0.2, 1: 0.9, 5: 0.0})
    assert len(_pngs(page)) == 3
    page = render_html(report, raster={f"l{i}": np.zeros((5, 3)) for i in range(12)})
    assert "4 more layer(s) not shown" in page


def test_html_escapes_names(report):
    counts = RunCounts(layers=[LayerCounts(name="<b>x</b>", kind="QLIF", neurons=1, spikes=1, steps=1, samples=1,
                                           compartment_updates=1)], samples=1, steps_per_sample=1)
    page = render_html(estimate(counts, load_target("loihi1")), counts=counts)
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.skipif(_browser() is None, reason="no chromium on PATH")
def test_html_renders_in_headless_chromium(tmp_path, report):
    page = write_html(tmp_path / "report.html", report, _counts(), raster=_raster())
    shot = tmp_path / "shot.png"
    cmd = [
        _browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2000", f"--screenshot={shot}",
        page.resolve().as_uri(),
    ]
    subprocess.run(cmd, check=False, timeout=120, capture_output=True)
    assert shot.exists(), "chromium wrote no screenshot"
    data = shot.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 20_000


def test_reports_accept_the_dict_form(tmp_path, report):
    """The CLI passes EnergyReport.to_dict() plus extra keys (counts, accuracy, artifact ...)."""
    import io

    from rich.console import Console

    from neurocompile.report import render_terminal

    data = report.to_dict()
    data.update(artifact="x.loihi2", dataset="sdigits", accuracy=0.75, counts=_counts().to_dict(), activity=[])
    buf = io.StringIO()
    render_terminal(data, console=Console(file=buf, width=160))
    out = buf.getvalue()
    assert "Loihi 2 energy is an ESTIMATE" in out and "75.00%" in out and "graded msgs" in out
    p = tmp_path / "r.html"
    page = render_html(data, p, raster=_raster(), core_utilisation={})
    assert p.read_text() == page
    assert len(_pngs(page)) == 4 and "accuracy 75.00%" in page
    # a JSON round trip still renders
    loaded = load_json(write_json(tmp_path / "r.json", data))
    assert "Loihi 2" in render_html(loaded)


def test_energy_report_dict_round_trip(report):
    from neurocompile.cost.energy import EnergyReport

    assert EnergyReport.from_dict({**report.to_dict(), "unknown": 1}) == report
    with pytest.raises(ValueError, match="missing"):
        EnergyReport.from_dict({"target": "loihi2"})
