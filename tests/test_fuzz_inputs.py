"""Seeded fuzzing of everything that reads user files: model loaders (and the pickle scanner in front of them),
the artifact manifest reader and the dataset reader. Random and mutated inputs may load or fail, but a failure
is always the project's error type with a one-line message, never another exception. Iterations are bounded.
"""

from __future__ import annotations

import io
import json
import random
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from test_hardening_output import write

from neurocompile.artifact import load_artifact
from neurocompile.datasets import check_compatible, load_dataset
from neurocompile.errors import NeurocompileError
from neurocompile.frontend import load_model, save_exported, save_torchscript
from neurocompile.frontend.safety import check_model_file
from neurocompile.models import ModelConfig, SSMClassifier, save_checkpoint


def mutate(data: bytes, rng: random.Random) -> bytes:
    """Flip bytes, truncate, insert random bytes, or duplicate a slice."""
    b = bytearray(data)
    kind = rng.randrange(4)
    if kind == 0:
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == 1:
        b = b[: rng.randrange(len(b))]
    elif kind == 2:
        i = rng.randrange(len(b))
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    else:
        i = rng.randrange(len(b))
        j = min(len(b), i + rng.randint(1, 256))
        b[i:i] = b[i:j]
    return bytes(b)


def mutate_member(data: bytes, rng: random.Random) -> bytes:
    """Rewrite one zip member with mutated content (a valid archive with a bad member)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zi, zipfile.ZipFile(out, "w") as zo:
        infos = zi.infolist()
        pick = rng.randrange(len(infos))
        for k, item in enumerate(infos):
            content = zi.read(item.filename)
            if k == pick and content:
                content = mutate(content, rng)
            zo.writestr(item, content)
    return out.getvalue()


def check_error(exc: NeurocompileError) -> None:
    msg = str(exc)
    assert msg and "\n" not in msg and "Traceback" not in msg, msg


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("fuzz_models")
    torch.manual_seed(0)
    model = SSMClassifier(ModelConfig(family="spikingssm", d_model=8, d_state=4, n_layers=1)).eval()
    x = torch.rand(1, 4, 1)
    save_checkpoint(model, d / "c.pt")
    save_torchscript(model, d / "t.pt", x)
    save_exported(model, d / "e.pt2", x)
    return {name: (d / name).read_bytes() for name in ("c.pt", "t.pt", "e.pt2")}


def test_fuzz_pickle_scanner(models, tmp_path):
    """600 mutated model files through the scanner alone: findings or nothing, only ModelLoadError."""
    rng = random.Random(11)
    outcomes = {"clean": 0, "refused": 0}
    for i in range(600):
        name = rng.choice(sorted(models))
        data = mutate_member(models[name], rng) if rng.random() < 0.6 else mutate(models[name], rng)
        p = tmp_path / f"s{i}{Path(name).suffix}"
        p.write_bytes(data)
        try:
            check_model_file(p)
            outcomes["clean"] += 1
        except NeurocompileError as exc:
            check_error(exc)
            outcomes["refused"] += 1
        p.unlink()
    assert outcomes["clean"] > 0 and outcomes["refused"] > 0, outcomes


@pytest.mark.slow
def test_fuzz_model_loaders(models, tmp_path):
    """Mutated checkpoints, TorchScript and torch.export files: loading gives a model or a one-line error."""
    rng = random.Random(7)
    outcomes = {"ok": 0, "error": 0}
    for i in range(90):
        name = sorted(models)[i % 3]
        data = mutate_member(models[name], rng) if i % 2 else mutate(models[name], rng)
        p = tmp_path / f"m{i}{Path(name).suffix}"
        p.write_bytes(data)
        try:
            load_model(p)
            outcomes["ok"] += 1
        except NeurocompileError as exc:
            check_error(exc)
            outcomes["error"] += 1
        p.unlink()
    assert outcomes["error"] > 30, outcomes


def test_fuzz_random_bytes_as_models(tmp_path):
    rng = random.Random(3)
    heads = [b"", b"PK\x03\x04", b"\x80\x02", b"\x80\x05", b"(", b"c"]
    for i in range(60):
        p = tmp_path / f"r{i}.pt"
        p.write_bytes(rng.choice(heads) + bytes(rng.randrange(256) for _ in range(rng.randint(1, 400))))
        with pytest.raises(NeurocompileError) as exc:
            load_model(p)
        check_error(exc.value)


def _random_value(rng: random.Random, depth: int = 0):
    choices = [lambda: None, lambda: True, lambda: rng.randint(-(2**70), 2**70), lambda: rng.random() * 1e300,
               lambda: "../" * rng.randint(0, 3) + "x", lambda: ""]
    if depth < 2:
        choices += [lambda: [_random_value(rng, depth + 1)], lambda: {"k": _random_value(rng, depth + 1)}]
    return rng.choice(choices)()


def _paths(obj, prefix=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))


def test_fuzz_manifest_reader(tmp_path):
    """300 manifests, mutated as bytes or as JSON values: load_artifact loads or raises ArtifactError."""
    art = write(tmp_path / "a.loihi2", extra_json={"quant_report.json": {}})
    good = (art / "manifest.json").read_bytes()
    tree = json.loads(good)
    keys = list(_paths(tree))
    rng = random.Random(5)
    outcomes = {"ok": 0, "error": 0}
    for i in range(300):
        if i % 2:
            data = mutate(good, rng)
        else:
            m = json.loads(good)
            path = rng.choice(keys)
            node = m
            for k in path[:-1]:
                node = node[k]
            if rng.random() < 0.2:
                node.pop(path[-1])
            else:
                node[path[-1]] = _random_value(rng)
            data = json.dumps(m).encode()
        (art / "manifest.json").write_bytes(data)
        try:
            load_artifact(art)
            outcomes["ok"] += 1
        except NeurocompileError as exc:
            check_error(exc)
            outcomes["error"] += 1
    assert outcomes["error"] > 150, outcomes


def test_fuzz_dataset_reader(tmp_path):
    """200 mutated .npz files: load_dataset + check_compatible load or raise DatasetError."""
    buf = io.BytesIO()
    np.savez(buf, x=np.random.default_rng(0).random((3, 5, 2)).astype(np.float32), y=np.array([0, 1, 2]))
    good = buf.getvalue()
    rng = random.Random(9)
    outcomes = {"ok": 0, "error": 0}
    for i in range(200):
        data = mutate_member(good, rng) if i % 2 else mutate(good, rng)
        p = tmp_path / f"d{i}.npz"
        p.write_bytes(data)
        try:
            ds = load_dataset(str(p))
            check_compatible(ds, 2, False, "model 'm'", classes=3)
            outcomes["ok"] += 1
        except NeurocompileError as exc:
            check_error(exc)
            outcomes["error"] += 1
        p.unlink()
    assert outcomes["error"] > 50, outcomes
