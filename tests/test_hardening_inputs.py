"""Bad input is one clear line naming the key, never a traceback or a silent acceptance.

Reproduces the defects found on the landed code: manifests without ``input`` or with wrong types, a file list
pointing outside the artifact (``../../etc/passwd`` was hashed and accepted), target values out of range
(MemoryError, ZeroDivisionError, an internal error without the key), a bad ``--config`` for inspect/convert,
a corrupt quant report, a token dataset fed to a float-input model, labels out of range, ``--workers -3``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_hardening_output import write

from neurocompile.artifact import load_artifact
from neurocompile.cli import main
from neurocompile.errors import ArtifactError, TargetError
from neurocompile.fileio import sha256
from neurocompile.models import ModelConfig
from neurocompile.target import load_target, targets_dir


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(r, *needles: str) -> None:
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1, r.output
    for n in needles:
        assert n in r.output, r.output


@pytest.fixture
def art(tmp_path) -> Path:
    return write(tmp_path / "a.loihi2", extra_json={"quant_report.json": [1, 2, 3]})


def edit_manifest(art: Path, fn) -> None:
    m = json.loads((art / "manifest.json").read_text())
    fn(m)
    (art / "manifest.json").write_text(json.dumps(m))


# -- manifests -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("label,fn,needle", [
    ("no input", lambda m: m.pop("input"), "key 'input': missing"),
    ("input a list", lambda m: m.__setitem__("input", [1]), "key 'input': expected an object, got array"),
    ("size a string", lambda m: m["input"].__setitem__("size", "big"), "key 'input.size': expected an integer"),
    ("size zero", lambda m: m["input"].__setitem__("size", 0), "key 'input.size': 0 is out of range"),
    ("tokens a number", lambda m: m["input"].__setitem__("tokens", 1), "key 'input.tokens': expected boolean"),
    ("files a list", lambda m: m.__setitem__("files", []), "key 'files': expected an object"),
    ("target a path", lambda m: m["target"].__setitem__("name", "../../tmp/evil.toml"), "key 'target.name'"),
    ("bad digest", lambda m: m["files"].__setitem__("int/graph.json", "abc"), "expected a SHA-256"),
    ("version true", lambda m: m.__setitem__("format_version", True), "format version True"),
])
def test_manifest_schema_errors_name_the_key(art, label, fn, needle):
    edit_manifest(art, fn)
    with pytest.raises(ArtifactError) as exc:
        load_artifact(art)
    assert needle in str(exc.value) and "\n" not in str(exc.value), str(exc.value)
    one_line_error(run("simulate", art), needle)


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "int/../../x", "int\\..\\x", "C:/x"])
def test_manifest_paths_outside_the_artifact_are_refused(art, name):
    digest = sha256("/etc/passwd") if Path("/etc/passwd").exists() else "0" * 64
    edit_manifest(art, lambda m: m["files"].__setitem__(name, digest))
    with pytest.raises(ArtifactError, match="leaves the artifact folder"):
        load_artifact(art)


def test_manifest_link_out_of_the_artifact_is_refused(art, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    os.symlink(secret, art / "int" / "extra.txt")
    edit_manifest(art, lambda m: m["files"].__setitem__("int/extra.txt", sha256(secret)))
    with pytest.raises(ArtifactError, match="resolves outside the artifact"):
        load_artifact(art)


def test_corrupt_quant_report_is_one_line(art):
    one_line_error(run("inspect", art, "--quant"), "quant_report.json", "unexpected structure")
    (art / "quant_report.json").write_text("{not json")
    edit_manifest(art, lambda m: m["files"].__setitem__("quant_report.json", sha256(art / "quant_report.json")))
    one_line_error(run("inspect", art, "--quant"), "quant_report.json", "cannot be read as JSON")


# -- targets ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key,value,needle", [
    ("state_bits", "1000000000000", "precision.state_bits.value': 1000000000000 is out of range [2, 32]"),
    ("weight_bits", "100000", "precision.weight_bits.value': 100000 is out of range [1, 16]"),
    ("graded_message_bits", "64", "precision.graded_message_bits.value': 64 is out of range [1, 32]"),
    ("decay_bits", "40", "precision.decay_bits.value': 40 is out of range"),
])
def test_target_values_out_of_range_name_the_key(tmp_path, key, value, needle):
    text = (targets_dir() / "loihi2.toml").read_text()
    new, n = re.subn(rf"^{key} = {{ value = \d+", f"{key} = {{ value = {value}", text, count=1, flags=re.MULTILINE)
    assert n == 1
    (tmp_path / "t.toml").write_text(new)
    with pytest.raises(TargetError) as exc:
        load_target(tmp_path / "t.toml")
    assert needle in str(exc.value), str(exc.value)
    one_line_error(run("export", "no-such-model.pt", "--target", tmp_path / "t.toml"), needle)


def test_energy_constants_have_an_upper_bound(tmp_path):
    text = (targets_dir() / "loihi2.toml").read_text()
    new = re.sub(r"^synaptic_op_pj = \{ value = [0-9.e+-]+", "synaptic_op_pj = { value = 1e300", text, flags=re.MULTILINE)
    (tmp_path / "t.toml").write_text(new)
    with pytest.raises(TargetError, match=r"energy.synaptic_op_pj.value': 1e\+300 is out of range"):
        load_target(tmp_path / "t.toml")


def test_shipped_targets_are_inside_every_range():
    for p in sorted(targets_dir().glob("*.toml")):
        load_target(p)


# -- --config, datasets, options -------------------------------------------------------------------------------

@pytest.mark.parametrize("cmd", [("inspect",), ("convert", "--to", "onnx")])
def test_bad_config_file_is_one_line(tiny_model_file, tmp_path, cmd):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    args = [cmd[0], tiny_model_file, *cmd[1:], "--config"]
    one_line_error(run(*args, bad), "config file", "cannot be read as JSON")
    one_line_error(run(*args, tmp_path), "config file", "Is a directory")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00")
    one_line_error(run(*args, tmp_path / "bin.json"), "cannot be read as JSON")


def test_token_dataset_for_a_float_model_is_refused(art, tmp_path):
    np.savez(tmp_path / "tok.npz", x=np.zeros((2, 4), np.int64), y=np.zeros(2, np.int64))
    one_line_error(run("simulate", art, "--dataset", tmp_path / "tok.npz"), "integer token ids", "float features")


def test_labels_out_of_range_are_refused(art, tmp_path):
    np.savez(tmp_path / "lab.npz", x=np.zeros((2, 4, 1), np.float32), y=np.array([0, 3]))
    one_line_error(run("simulate", art, "--dataset", tmp_path / "lab.npz"), "label 3", "[0, 0]")
    np.savez(tmp_path / "neg.npz", x=np.zeros((2, 4, 1), np.float32), y=np.array([0, -1]))
    one_line_error(run("report", art, "--dataset", tmp_path / "neg.npz"), "label -1")


def test_token_ids_outside_the_vocabulary_are_refused():
    from neurocompile.datasets import Dataset, check_compatible
    from neurocompile.errors import DatasetError

    ds = Dataset(np.array([[0, 5, 12]]), None, "t")
    assert check_compatible(ds, 1, True, "model 'm'", vocab=13).x.dtype == np.int64
    with pytest.raises(DatasetError, match="token id 12 is outside the vocabulary"):
        check_compatible(ds, 1, True, "model 'm'", vocab=12)


@pytest.mark.parametrize("cmd", ["report", "simulate"])
def test_negative_workers_are_refused(art, cmd):
    one_line_error(run(cmd, art, "--workers", "-3"), "--workers must be a whole number of at least 1, got -3")


def test_json_and_html_must_differ(art, tmp_path):
    one_line_error(run("report", art, "--json", tmp_path / "r", "--html", tmp_path / "r"), "same file")


def test_python_dash_m_works(tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    r = subprocess.run([sys.executable, "-m", "neurocompile", "--version"], capture_output=True, text=True,
                       env=env, cwd=tmp_path, timeout=300, check=False)
    assert r.returncode == 0 and "neurocompile" in r.stdout, r.stderr[-500:]
    assert shutil.which(sys.executable)


def test_inspect_offers_the_flag_its_pickle_error_names(tmp_path):
    import torch

    from neurocompile.models import SSMClassifier as Model

    p = tmp_path / "pickled.pt"
    torch.save(Model(ModelConfig(family="spikingssm", d_model=8, d_state=4, n_layers=1)), p)
    one_line_error(run("inspect", p), "--trust-pickle", "SSMClassifier")
    r = run("inspect", p, "--trust-pickle")
    assert r.exit_code == 0 and "S4D" in r.output, r.output
