"""End-to-end CLI tests: export -> simulate -> report on the bundled model, determinism, and bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from neurocompile.cli import main

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "examples" / "checkpoints" / "spikingssm_sdigits.pt"

pytestmark = pytest.mark.skipif(not MODEL.exists(), reason="bundled checkpoint not trained yet")


def run(*args: str) -> CliRunner.Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def tree_bytes(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture
def artifact(bundled_artifact: Path) -> Path:
    """The bundled model's loihi2 artifact (conftest.py; one export per test worker)."""
    return bundled_artifact


def test_export_writes_manifest(artifact: Path) -> None:
    m = json.loads((artifact / "manifest.json").read_text())
    assert m["format"] == "neurocompile-artifact"
    assert m["target"]["name"] == "loihi2"
    assert m["input"] == {"size": 1, "tokens": False, "steps": 64}
    for name, digest in m["files"].items():
        assert (artifact / name).is_file(), name
        assert len(digest) == 64


def test_export_is_deterministic(artifact: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.loihi2"
    r = run("export", MODEL, "--target", "loihi2", "-o", again)
    assert r.exit_code == 0, r.output
    a, b = tree_bytes(artifact), tree_bytes(again)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == b[k], f"{k} differs between two exports"


def test_simulate_accuracy_within_two_points_of_float(artifact: Path, tmp_path: Path) -> None:
    js = tmp_path / "sim.json"
    r = run("simulate", artifact, "--dataset", "sdigits", "--json", js)
    assert r.exit_code == 0, r.output
    data = json.loads(js.read_text())
    assert data["samples"] == 450
    assert "integer accuracy" in r.output and "float accuracy" in r.output
    assert abs(data["accuracy"] - data["float_accuracy"]) <= 0.02, data
    assert data["accuracy"] > 0.9
    assert data["layers"], "per-layer spike counts expected"
    for layer in data["layers"]:
        assert {"name", "spikes", "spike_rate"} <= layer.keys()
        assert 0.0 <= layer["spike_rate"] <= 1.0
    assert sum(layer["spikes"] for layer in data["layers"]) > 0


def test_report_json_and_html(artifact: Path, tmp_path: Path) -> None:
    js, html = tmp_path / "r.json", tmp_path / "r.html"
    r = run("report", artifact, "--dataset", "sdigits", "--limit", "32", "--json", js, "--html", html)
    assert r.exit_code == 0, r.output
    data = json.loads(js.read_text())
    assert data["target"] == "loihi2"
    assert data["energy_per_sample_j"] > 0 and data["latency_per_step_s"] > 0
    assert data["estimate_basis"]
    assert data["layers"]
    for layer in data["layers"]:
        assert {"name", "energy_j", "synaptic_ops", "neuron_updates", "spikes"} <= layer.keys()
    text = html.read_text()
    assert "data:image/png;base64," in text


def test_inspect_model_and_artifact(artifact: Path) -> None:
    r = run("inspect", MODEL)
    assert r.exit_code == 0, r.output
    assert "S4D" in r.output
    r = run("inspect", artifact, "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert any(row["op"] == "QModeBank" for row in rows)
    r = run("inspect", artifact, "--quant")
    assert r.exit_code == 0, r.output


def test_targets_lists_four() -> None:
    r = run("targets", "--json")
    assert r.exit_code == 0, r.output
    names = {t["name"] for t in json.loads(r.output)}
    assert names == {"loihi1", "loihi2", "kapoho-point", "hala-point"}


# -- bad input: one clear line, non-zero exit, nothing half-written --------------------------------

def _assert_clean_error(r: CliRunner.Result, *needles: str) -> None:
    assert r.exit_code != 0
    assert "Traceback" not in r.output
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    for n in needles:
        assert n in r.output, (n, r.output)


def test_missing_model_file(tmp_path: Path) -> None:
    out = tmp_path / "x.loihi2"
    r = run("export", tmp_path / "nope.pt", "--target", "loihi2", "-o", out)
    _assert_clean_error(r, "nope.pt")
    assert not out.exists()


def test_not_a_model(tmp_path: Path) -> None:
    bad = tmp_path / "notes.pt"
    bad.write_text("these are not weights")
    out = tmp_path / "x.loihi2"
    r = run("export", bad, "--target", "loihi2", "-o", out)
    _assert_clean_error(r, "notes.pt")
    assert not out.exists()
    assert not any(p.name.startswith(".x.loihi2") for p in tmp_path.iterdir()), "temporary output left behind"


def test_unknown_target_lists_known(tmp_path: Path) -> None:
    out = tmp_path / "x"
    r = run("export", MODEL, "--target", "loihi9", "-o", out)
    _assert_clean_error(r, "loihi9", "loihi2", "hala-point")
    assert not out.exists()


def test_artifact_from_another_version(artifact: Path, tmp_path: Path) -> None:
    old = tmp_path / "old.loihi2"
    shutil.copytree(artifact, old)
    m = json.loads((old / "manifest.json").read_text())
    m["format_version"] = 999
    m["neurocompile_version"] = "9.9.9"
    (old / "manifest.json").write_text(json.dumps(m))
    r = run("simulate", old, "--limit", "2")
    _assert_clean_error(r, "999", "re-export")


def test_tampered_artifact(artifact: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.loihi2"
    shutil.copytree(artifact, bad)
    w = bad / "int" / "weights.npz"
    w.write_bytes(w.read_bytes()[:-10])
    r = run("simulate", bad, "--limit", "2")
    _assert_clean_error(r, "weights.npz")


def test_not_an_artifact(tmp_path: Path) -> None:
    r = run("simulate", tmp_path)
    _assert_clean_error(r, "not a neurocompile artifact")


def test_bad_dataset_shape(artifact: Path, tmp_path: Path) -> None:
    f = tmp_path / "bad.npz"
    np.savez(f, x=np.zeros((3, 64, 5), np.float32), y=np.zeros(3, np.int64))
    r = run("simulate", artifact, "--dataset", f)
    _assert_clean_error(r, "1 feature", "5")


def test_existing_output_needs_force(artifact: Path) -> None:
    r = run("export", MODEL, "--target", "loihi2", "-o", artifact)
    _assert_clean_error(r, "--force")


def test_real_entry_point_has_no_traceback(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "neurocompile"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "neurocompile.cli"]
    p = subprocess.run(cmd + ["export", str(tmp_path / "missing.pt"), "--target", "loihi2"],
                       capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    assert p.stderr.strip().startswith("error:") and "missing.pt" in p.stderr


def test_model_that_does_not_fit_target(tmp_path: Path) -> None:
    # Loihi 1 carries only binary spikes: the graded SSM messages cannot be deployed there.
    out = tmp_path / "x.loihi1"
    r = run("export", MODEL, "--target", "loihi1", "-o", out)
    _assert_clean_error(r, "does not fit target 'loihi1'", "message-bits", "graded spikes", "nothing was written")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_generated_task_uses_the_checkpoints_generator_settings() -> None:
    # A ListOps checkpoint records its generator settings; evaluation must use the same distribution.
    from neurocompile.api import _task_options
    from neurocompile.datasets import load_dataset
    from neurocompile.frontend import load_model

    ckpt = ROOT / "examples" / "checkpoints" / "spikingssm_listops.pt"
    if not ckpt.exists():
        pytest.skip("ListOps checkpoint not shipped")
    opts = _task_options(load_model(ckpt), "listops")
    assert opts.get("min_length", 1) > 1
    ds = load_dataset("listops", split="test", options=opts)
    lengths = (np.asarray(ds.x) != 0).sum(axis=1)
    assert lengths.min() >= opts["min_length"]
    assert lengths.max() <= opts["max_length"]
    default = load_dataset("listops", split="test")
    assert (np.asarray(default.x) != 0).sum(axis=1).min() < opts["min_length"]


def test_precision_problem_names_node_and_the_flag_that_helps(tmp_path: Path) -> None:
    out = tmp_path / "d5"
    r = run("export", MODEL, "--target", "loihi2", "--decay-bits", "5", "-o", out)
    _assert_clean_error(r, "s4d.modes", "decay_bits = 5", "--allow-precision-loss")
    assert not out.exists()
    r = run("export", MODEL, "--target", "loihi2", "--decay-bits", "5", "--allow-precision-loss", "-o", out)
    assert r.exit_code == 0, r.output
    assert "precision warning" in r.output
    m = json.loads((out / "manifest.json").read_text())
    assert m["options"]["decay_bits"] == 5 and m["options"]["allow_precision_loss"] is True


def test_convert_to_onnx_matches_the_float_graph(tmp_path: Path) -> None:
    from neurocompile.datasets import load_dataset
    from neurocompile.frontend import load_model, trace
    from neurocompile.interop.onnx import run_onnx
    from neurocompile.ir.interpret import interpret

    out = tmp_path / "m.onnx"
    r = run("convert", MODEL, "--to", "onnx", "-o", out)
    assert r.exit_code == 0, r.output
    x = load_dataset("sdigits", "test").x[:8]
    ref = interpret(trace(load_model(MODEL)), x).logits
    got = run_onnx(out, x)
    assert np.max(np.abs(got - ref)) <= 1e-4 * np.max(np.abs(ref))
    r = run("convert", MODEL, "--to", "nir", "-o", tmp_path / "m.nir")
    _assert_clean_error(r, "NIR 1.0 has no diagonal-SSM")
    assert not (tmp_path / "m.nir").exists() and not list(tmp_path.glob(".m.nir*"))


def test_plain_snn_from_nir_exports_and_simulates(tmp_path: Path) -> None:
    # A two-layer Affine + LIF network as another framework would write it to NIR.
    import nir

    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 0.6, (16, 4)).astype(np.float32)
    w2 = rng.normal(0, 0.6, (3, 16)).astype(np.float32)
    dt, tau = 1e-4, 5e-4
    lif = lambda n: nir.LIF(tau=np.full(n, tau), r=np.full(n, tau / dt), v_leak=np.zeros(n),  # noqa: E731
                            v_threshold=np.ones(n), v_reset=np.zeros(n))
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([4])), "fc1": nir.Affine(weight=w1, bias=np.zeros(16)),
               "lif1": lif(16), "fc2": nir.Affine(weight=w2, bias=np.zeros(3)), "lif2": lif(3),
               "output": nir.Output(output_type=np.array([3]))},
        edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")],
        metadata={"dt": dt})
    net = tmp_path / "snn.nir"
    nir.write(net, graph)
    data = tmp_path / "data.npz"
    np.savez(data, x=rng.uniform(0, 2, (12, 20, 4)).astype(np.float32))
    art = tmp_path / "snn.loihi2"
    r = run("export", net, "--target", "loihi2", "--calibration", data, "-o", art)
    assert r.exit_code == 0, r.output
    js = tmp_path / "sim.json"
    r = run("simulate", art, "--dataset", data, "--json", js)
    assert r.exit_code == 0, r.output
    layers = {layer["name"]: layer for layer in json.loads(js.read_text())["layers"]}
    assert layers and sum(layer["spikes"] for layer in layers.values()) > 0


def test_finetune_writes_a_loadable_checkpoint(tmp_path: Path) -> None:
    from neurocompile.frontend import load_model

    out = tmp_path / "qat.pt"
    r = run("finetune", MODEL, "--target", "loihi2", "--dataset", "sdigits", "--epochs", "1", "-o", out)
    assert r.exit_code == 0, r.output
    loaded = load_model(out)
    assert loaded.metrics.get("task") == "sdigits"
    r = run("finetune", MODEL, "--target", "loihi2", "--epochs", "1", "-o", out)
    _assert_clean_error(r, "--force")


def test_report_lists_host_and_chip_work_and_cycle_timing(artifact: Path, tmp_path: Path) -> None:
    from neurocompile.artifact import load_artifact
    from neurocompile.mapping.placement import place

    js, html = tmp_path / "r.json", tmp_path / "r.html"
    r = run("report", artifact, "--dataset", "sdigits", "--limit", "4", "--timing", "cycle", "--json", js,
            "--html", html)
    assert r.exit_code == 0, r.output
    assert "host work (not chip)" in r.output
    data = json.loads(js.read_text())
    art = load_artifact(artifact)
    assert data["cores_used"] == place(art.int_graph, art.target_spec).cores_used
    host = {le["name"] for le in data["layers"] if not le["on_chip"]}
    assert host == set(data["host"]["layers"]) and "decoder" in host
    assert all(le["energy_j"] == 0 and le["cores"] == [] for le in data["layers"] if le["name"] in host
               and le["kind"] != "QInput")
    assert data["timing"]["mode"] == "cycle" and len(data["timing"]["per_step_ns"]) == data["steps_per_sample"]
    assert data["latency_per_step_s"] == data["timing"]["mean_ns"] * 1e-9
    assert 'alt="latency per step"' in html.read_text()


def test_check_artifact_reads_its_placement(artifact: Path) -> None:
    r = run("check", artifact, "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    stored = json.loads((artifact / "placement.json").read_text())
    assert rep["exact"] and rep["fits"]
    assert stored["fit"]["cores_used"] == rep["cores_used"] == stored["placement"]["cores_used"]
    assert "seconds" not in stored["fit"]  # no wall time: the artifact stays byte-identical


def test_simulate_max_memory_chunks_the_float_comparison(artifact: Path) -> None:
    from neurocompile import api
    from neurocompile.artifact import load_artifact

    whole = api.simulate(artifact, limit=24, console=False)
    per = api._float_bytes_per_sample(load_artifact(artifact).float_graph, whole["steps_per_sample"])
    chunked = api.simulate(artifact, limit=24, max_memory=5 * per, console=False)  # 5 sequences per chunk
    assert chunked["float_accuracy"] == whole["float_accuracy"] is not None
    assert chunked["accuracy"] == whole["accuracy"] and chunked["layers"] == whole["layers"]
    timed = api.simulate(artifact, limit=4, max_memory=per // 2, console=False)  # chunks of time within a sequence
    assert timed["float_accuracy"] == api.simulate(artifact, limit=4, console=False)["float_accuracy"] is not None
    step = api._float_bytes_per_sample(load_artifact(artifact).float_graph, 1)
    r = run("simulate", artifact, "--limit", "4", "--max-memory", str(step // 2))
    assert r.exit_code == 0, r.output
    assert "float comparison skipped" in r.output and "--max-memory" in r.output
    r = run("simulate", artifact, "--limit", "4", "--max-memory", "lots")
    assert r.exit_code == 2 and "is not a size" in r.output
