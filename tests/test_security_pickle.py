"""Crafted-pickle corpus: no model file runs code unless the user passes --trust-pickle.

Every crafted file carries a payload that, if unpickled, creates a marker file. The fixture builds the corpus
from a real model (checkpoint, TorchScript, torch.export) by swapping one member for a payload. Each file must
be refused with one line naming what was found and the --trust-pickle flag, and the marker must not exist.
Control tests prove the payloads are live: the raw torch/pickle loaders DO create the marker (run in a
subprocess), so it is the scanner that stops them.
"""

from __future__ import annotations

import io
import json
import pickle
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from neurocompile.cli import main
from neurocompile.errors import ModelLoadError
from neurocompile.frontend import load_model, save_exported, save_torchscript
from neurocompile.frontend.safety import check_model_file, scan_model_file
from neurocompile.models import ModelConfig, SSMClassifier, save_checkpoint


def _str(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b  # BINUNICODE


def payload_open(marker: Path, proto: int = 2) -> bytes:
    """A pickle that calls builtins.open(marker, 'w') (GLOBAL + REDUCE)."""
    return b"\x80" + bytes([proto]) + b"cbuiltins\nopen\n" + _str(str(marker)) + _str("w") + b"\x86R."


def payload_system(marker: Path) -> bytes:
    """A pickle that calls os.system('touch marker')."""
    return b"\x80\x02cos\nsystem\n" + _str(f"touch '{marker}'") + b"\x85R."


def payload_stack_global(marker: Path) -> bytes:
    """Protocol 4: STACK_GLOBAL builtins.open with the names memoised and fetched back (BINGET)."""
    def short(s: str) -> bytes:
        return b"\x8c" + bytes([len(s)]) + s.encode()
    return (b"\x80\x04" + short("builtins") + b"\x94" + short("open") + b"\x94" + b"h\x00h\x01\x93"
            + short(str(marker)) + short("w") + b"\x86R.")


def payload_inst(marker: Path) -> bytes:
    """Protocol 0: INST builtins.open (class and arguments inline)."""
    return b"(V" + str(marker).encode() + b"\nVw\nibuiltins\nopen\n."


def payload_computed(marker: Path) -> bytes:
    """STACK_GLOBAL whose names come from a call result, not literal strings."""
    return (b"\x80\x04" + b"\x8c\x08builtins\x8c\x03str\x93" + b"\x8c\x08builtins\x85R" + b"\x8c\x04open\x93"
            + b"\x8c" + bytes([len(str(marker))]) + str(marker).encode() + b"\x8c\x01w\x86R.")


def _replace(src: Path, dst: Path, swap: dict[str, bytes], add: dict[str, bytes] | None = None) -> Path:
    """Copy zip ``src`` to ``dst`` with members whose name ends with a key of ``swap`` replaced."""
    with zipfile.ZipFile(src) as zi, zipfile.ZipFile(dst, "w") as zo:
        prefix = zi.namelist()[0].split("/", 1)[0] + "/"
        for item in zi.infolist():
            data = zi.read(item.filename)
            for suffix, new in swap.items():
                if item.filename.endswith(suffix):
                    data = new
            zo.writestr(item, data)
        for name, data in (add or {}).items():
            zo.writestr(prefix + name, data)
    return dst


def _torch_zip(payload: bytes) -> bytes:
    """A torch.save zip archive whose data.pkl is ``payload``."""
    buf = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buf)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zi, zipfile.ZipFile(out, "w") as zo:
        for item in zi.infolist():
            zo.writestr(item, payload if item.filename.endswith("data.pkl") else zi.read(item.filename))
    return out.getvalue()


def _legacy(payload: bytes) -> bytes:
    """The pre-zip torch.save stream: magic, protocol, sys_info, then the object's pickle."""
    head = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2)
    return head + pickle.dumps({"little_endian": True}, protocol=2) + payload + pickle.dumps([], protocol=2)


def _pt2_with_pickled_weight(src: Path, dst: Path, payload: bytes) -> Path:
    with zipfile.ZipFile(src) as zi:
        cfg_name = next(n for n in zi.namelist() if n.endswith("_weights_config.json"))
        cfg = json.loads(zi.read(cfg_name))
    fqn = min(cfg["config"])
    cfg["config"][fqn]["use_pickle"] = True
    weight = cfg["config"][fqn]["path_name"]
    return _replace(src, dst, {cfg_name.split("/", 1)[1]: json.dumps(cfg).encode(),
                               f"data/weights/{weight}": _torch_zip(payload)})


def _pt2_with_opaque_constant(src: Path, dst: Path, payload: bytes) -> Path:
    with zipfile.ZipFile(src) as zi:
        cfg_name = next(n for n in zi.namelist() if n.endswith("_constants_config.json"))
        cfg = json.loads(zi.read(cfg_name))
    cfg.setdefault("config", {})["evil"] = {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": True,
                                            "tensor_meta": None}
    return _replace(src, dst, {cfg_name.split("/", 1)[1]: json.dumps(cfg).encode()},
                    add={"data/constants/opaque_obj_0": payload})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    marker = d / "MARKER"
    torch.manual_seed(0)
    model = SSMClassifier(ModelConfig(family="spikingssm", d_model=8, d_state=4, n_layers=1)).eval()
    x = torch.rand(1, 4, 1)
    save_checkpoint(model, d / "good.pt")
    save_torchscript(model, d / "good_ts.pt", x)
    save_exported(model, d / "good.pt2", x)
    files = {
        "plain_pickle.pkl": (lambda p: p.write_bytes(payload_open(marker)), "builtins.open"),
        "legacy_torch_save.pt": (lambda p: p.write_bytes(_legacy(payload_open(marker))), "builtins.open"),
        "ckpt_os_system.pt": (lambda p: _replace(d / "good.pt", p, {"data.pkl": payload_system(marker)}),
                              "os.system"),
        "ckpt_stack_global.pt": (lambda p: _replace(d / "good.pt", p, {"data.pkl": payload_stack_global(marker)}),
                                 "builtins.open (STACK_GLOBAL)"),
        "ckpt_inst.pt": (lambda p: _replace(d / "good.pt", p, {"data.pkl": payload_inst(marker)}),
                         "builtins.open (INST)"),
        "ckpt_computed_name.pt": (lambda p: _replace(d / "good.pt", p, {"data.pkl": payload_computed(marker)}),
                                  "name is computed"),
        "ts_constants.pt": (lambda p: _replace(d / "good_ts.pt", p, {"constants.pkl": payload_open(marker)}),
                            "constants.pkl: imports builtins.open"),
        "ts_extra_file.pt": (lambda p: _replace(d / "good_ts.pt", p, {}, add={"extra/notes": payload_open(marker)}),
                             "extra/notes: imports builtins.open"),
        "export_use_pickle.pt2": (lambda p: _pt2_with_pickled_weight(d / "good.pt2", p, payload_open(marker)),
                                  "use_pickle"),
        "export_renamed.pt": (lambda p: _pt2_with_pickled_weight(d / "good.pt2", p, payload_open(marker)),
                              "use_pickle"),
        "export_sample_inputs.pt2": (
            lambda p: _replace(d / "good.pt2", p, {"data/sample_inputs/model.pt": _torch_zip(payload_open(marker))}),
            "sample_inputs/model.pt!archive/data.pkl: imports builtins.open"),
        "export_opaque_constant.pt2": (lambda p: _pt2_with_opaque_constant(d / "good.pt2", p, payload_open(marker)),
                                       "opaque_obj_0"),
    }
    out = {}
    for name, (make, needle) in files.items():
        make(d / name)
        out[name] = (d / name, needle)
    return d, marker, out


CORPUS = ["plain_pickle.pkl", "legacy_torch_save.pt", "ckpt_os_system.pt", "ckpt_stack_global.pt", "ckpt_inst.pt",
          "ckpt_computed_name.pt", "ts_constants.pt", "ts_extra_file.pt", "export_use_pickle.pt2",
          "export_renamed.pt", "export_sample_inputs.pt2", "export_opaque_constant.pt2"]


@pytest.mark.parametrize("name", CORPUS)
def test_crafted_file_is_refused_and_runs_no_code(corpus, name):
    _, marker, files = corpus
    path, needle = files[name]
    with pytest.raises(ModelLoadError) as exc:
        load_model(path)
    msg = str(exc.value)
    assert needle in msg, msg
    assert "--trust-pickle" in msg and "Refused" in msg and "\n" not in msg, msg
    assert not marker.exists(), f"{name}: the payload ran"


@pytest.mark.parametrize("cmd", [("export", "--target", "loihi2"), ("inspect",), ("convert", "--to", "onnx")])
def test_cli_commands_refuse_crafted_export_named_pt(corpus, cmd, tmp_path):
    _, marker, files = corpus
    path, _ = files["export_renamed.pt"]
    args = [cmd[0], str(path), *cmd[1:]]
    if cmd[0] != "inspect":
        args += ["-o", str(tmp_path / "out")]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, r.output
    assert "use_pickle" in r.output and "--trust-pickle" in r.output and "Traceback" not in r.output
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_genuine_files_pass_the_scanner(corpus):
    d, _, _ = corpus
    for name in ("good.pt", "good_ts.pt", "good.pt2"):
        assert scan_model_file(d / name) == [], name
        check_model_file(d / name)
        assert load_model(d / name).module is not None


def test_trust_pickle_skips_the_scan(corpus):
    _, _, files = corpus
    check_model_file(files["plain_pickle.pkl"][0], trust_pickle=True)  # no error: the user vouched for it


_CONTROL = """
import pickle, sys, torch
for path, how in zip(sys.argv[1::2], sys.argv[2::2]):
    try:
        if how == 'pickle':
            pickle.loads(open(path, 'rb').read())
        else:
            with open(path, 'rb') as f:
                torch.export.load(f)
    except Exception:
        pass
"""
_LIVE = [("plain_pickle.pkl", "pickle"), ("export_use_pickle.pt2", "export"), ("export_renamed.pt", "export"),
         ("export_sample_inputs.pt2", "export"), ("export_opaque_constant.pt2", "export")]


@pytest.mark.slow
def test_control_payloads_are_live_without_the_scanner(corpus, tmp_path):
    """Reproduces the defect: the raw loaders execute these payloads (in one child process, each with its own
    marker), so it is the scanner that stops them."""
    _, marker, files = corpus
    args = []
    for i, (name, how) in enumerate(_LIVE):
        src, _ = files[name]
        f = tmp_path / f"{i}_{src.name}"
        f.write_bytes(_rebuild_with_marker(src, tmp_path / f"MARKER{i}"))
        args += [str(f), how]
    subprocess.run([sys.executable, "-c", _CONTROL, *args], check=False, timeout=300, capture_output=True)
    for i, (name, _) in enumerate(_LIVE):
        assert (tmp_path / f"MARKER{i}").exists(), f"{name}: the payload did not run even without the scanner"
    assert not marker.exists()


def _rebuild_with_marker(src: Path, new_marker: Path) -> bytes:
    """``src`` with every payload's marker path replaced (nested zips are rebuilt, so lengths stay valid)."""
    old = str(src.parent / "MARKER").encode()

    def fix(data: bytes) -> bytes:
        if data.startswith(b"PK\x03\x04"):
            out = io.BytesIO()
            with zipfile.ZipFile(io.BytesIO(data)) as zi, zipfile.ZipFile(out, "w") as zo:
                for item in zi.infolist():
                    zo.writestr(item, fix(zi.read(item.filename)))
            return out.getvalue()
        if old in data:
            return payload_open(new_marker)
        return data

    return fix(src.read_bytes())


def test_scanner_reads_nothing_it_cannot_parse(tmp_path):
    """Random bytes and a text file are not pickles with findings: the torch loaders give their own error."""
    (tmp_path / "t.pt").write_bytes(b"hello world\n")
    assert scan_model_file(tmp_path / "t.pt") == []
    shutil.copy(tmp_path / "t.pt", tmp_path / "u.pt")
    with pytest.raises(ModelLoadError, match="not a loadable model file"):
        load_model(tmp_path / "u.pt")


def test_protocol_5_pickles_with_frames_and_allowed_globals_pass(tmp_path):
    """Framed protocol-4/5 pickles (STACK_GLOBAL with memoised names) of allowed classes are not refused."""
    import collections

    p = tmp_path / "od.pkl"
    p.write_bytes(pickle.dumps(collections.OrderedDict(a=1, b=collections.OrderedDict(c=2)), protocol=5))
    assert scan_model_file(p) == []
    p.write_bytes(pickle.dumps([collections.Counter("ab")] * 3, protocol=4))
    assert scan_model_file(p) == []
    p.write_bytes(pickle.dumps(ModelConfig(), protocol=5))
    assert [f.what for f in scan_model_file(p)] == ["imports neurocompile.models.config.ModelConfig (STACK_GLOBAL)"]
