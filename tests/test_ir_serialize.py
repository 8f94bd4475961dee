"""Serialisation: introspection round trip over every node class, byte-identical re-save, strict rejection, fuzz."""

from __future__ import annotations

import copy
import dataclasses
import json
import random
import zipfile

import numpy as np
import pytest
import torch
from test_ir_verify import float_graph, int_graph

from neurocompile.errors import IRError, NeurocompileError
from neurocompile.ir.graph import Graph
from neurocompile.ir.hw import INT_NODES
from neurocompile.ir.nodes import FLOAT_NODES
from neurocompile.ir.serialize import (
    GRAPH_FILE,
    NODE_TYPES,
    WEIGHTS_FILE,
    graph_from_dict,
    graph_to_bytes,
    graph_to_dict,
    load_graph,
    save_graph,
)
from neurocompile.ir.verify import field_defaults


def _instance(cls, rng):
    """An instance of ``cls`` with every field set to a non-default value of the declared kind."""
    kwargs = {}
    for name, default in field_defaults(cls).items():
        if isinstance(default, np.ndarray):
            shape = tuple(int(rng.integers(1, 4)) for _ in range(max(default.ndim, 1)))
            if default.dtype.kind == "c":
                v = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(default.dtype)
            elif default.dtype.kind == "i":
                v = rng.integers(-100, 100, size=shape).astype(default.dtype)
            else:
                v = rng.normal(size=shape).astype(default.dtype)
            kwargs[name] = v
        elif isinstance(default, bool):
            kwargs[name] = not default
        elif isinstance(default, int):
            kwargs[name] = default + 3
        elif isinstance(default, float):
            kwargs[name] = default + 0.1
        elif isinstance(default, str):
            kwargs[name] = default + "_x"
    return cls(**kwargs)


ALL_CLASSES = sorted({**FLOAT_NODES, **INT_NODES}.items())


def _concrete_node_classes():
    """Every class derived from the IR's Node base, found by walking the class tree (not from the registries)."""
    import neurocompile.ir.hw  # noqa: F401  (defines the integer node classes)
    from neurocompile.ir.nodes import Node

    seen, todo = {}, list(Node.__subclasses__())
    while todo:
        c = todo.pop()
        todo.extend(c.__subclasses__())
        if c.__module__.startswith("neurocompile.") and not c.__name__.startswith("_"):
            seen[c.__name__] = c
    return seen


def test_every_node_class_is_serialisable():
    walked = _concrete_node_classes()
    bases = {c for c in walked.values() if any(issubclass(o, c) and o is not c for o in walked.values())}
    leaves = {n for n, c in walked.items() if c not in bases}
    missing = sorted(leaves - set(NODE_TYPES))
    assert not missing, f"node classes the serialiser does not know: {missing}"
    for name, cls in NODE_TYPES.items():
        assert walked.get(name) is cls


@pytest.mark.parametrize("name,cls", ALL_CLASSES, ids=[n for n, _ in ALL_CLASSES])
def test_round_trip_every_node_class(name, cls):
    rng = np.random.default_rng(abs(hash(name)) % (1 << 32))
    node = _instance(cls, rng)
    g = Graph("one")
    g.add("n", node)
    arrays: dict[str, np.ndarray] = {}
    d = graph_to_dict(g, arrays)
    d2 = json.loads(json.dumps(d))  # through JSON text
    back = graph_from_dict(d2, arrays).node("n")
    assert type(back) is cls
    for f in dataclasses.fields(cls):
        a, b = getattr(node, f.name), getattr(back, f.name)
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), f.name
        else:
            assert a == b and type(a) is type(b), f.name


def _traced_graph(family: str) -> Graph:
    from neurocompile.frontend import trace
    from neurocompile.models import ModelConfig, SSMClassifier

    torch.manual_seed(0)
    model = SSMClassifier(ModelConfig(family=family, d_model=8, d_state=4, n_layers=2, norm="batch")).eval()
    return trace(model)


@pytest.mark.parametrize("family", ["spikingssm", "binary_s4d", "gsu", "spike_ssm"])
def test_save_load_save_byte_identical(tmp_path, family):
    g = _traced_graph(family)
    save_graph(g, tmp_path / "a")
    g2 = load_graph(tmp_path / "a")
    save_graph(g2, tmp_path / "b")
    for f in (GRAPH_FILE, WEIGHTS_FILE):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert graph_to_dict(g) == graph_to_dict(g2)
    assert g.order() == g2.order()
    assert np.load(tmp_path / "a" / WEIGHTS_FILE, allow_pickle=False)["blocks.0.s4d/C"].dtype == np.complex64


def test_integer_graph_round_trip(tmp_path):
    g = int_graph()
    save_graph(g, tmp_path / "q")
    g2 = load_graph(tmp_path / "q")
    assert graph_to_bytes(g) == graph_to_bytes(g2)
    assert g2.node("dense").weight.dtype == np.int64


def test_saving_twice_is_deterministic(tmp_path):
    g = float_graph()
    assert graph_to_bytes(g) == graph_to_bytes(g.copy())
    save_graph(g, tmp_path / "x")
    first = (tmp_path / "x" / WEIGHTS_FILE).read_bytes()
    save_graph(g, tmp_path / "x")
    assert (tmp_path / "x" / WEIGHTS_FILE).read_bytes() == first
    with zipfile.ZipFile(tmp_path / "x" / WEIGHTS_FILE) as zf:
        names = zf.namelist()
        assert names == sorted(names)
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def _saved(tmp_path):
    d = tmp_path / "g"
    save_graph(float_graph(), d)
    return d


def _edit_json(d, fn):
    doc = json.loads((d / GRAPH_FILE).read_text())
    fn(doc)
    (d / GRAPH_FILE).write_text(json.dumps(doc))


def _node(doc, name):
    return next(n for n in doc["nodes"] if n["name"] == name)


def _rewrite_npz(d, fn):
    with np.load(d / WEIGHTS_FILE, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    fn(arrays)
    np.savez(d / WEIGHTS_FILE, **arrays)


REJECT = [
    ("unknown schema version", lambda d: _edit_json(d, lambda doc: doc.update(version=99)), "schema version 99"),
    ("wrong format", lambda d: _edit_json(d, lambda doc: doc.update(format="onnx")), "format"),
    ("unknown node type", lambda d: _edit_json(d, lambda doc: _node(doc, "lif").update(type="Quantum")),
     "unknown node type 'Quantum'"),
    ("unknown field", lambda d: _edit_json(d, lambda doc: _node(doc, "lif")["attrs"].update(colour=1)), "colour"),
    ("wrong attr type", lambda d: _edit_json(d, lambda doc: _node(doc, "lif")["attrs"].update(tau="fast")), "tau"),
    ("missing array", lambda d: _rewrite_npz(d, lambda a: a.pop("encoder/weight")), "encoder/weight"),
    ("mismatched shape", lambda d: _rewrite_npz(d, lambda a: a.update({"encoder/weight": np.zeros((5, 1), np.float32)})),
     "encoder/weight"),
    ("changed values", lambda d: _rewrite_npz(d, lambda a: a.update({"encoder/weight": a["encoder/weight"] + 1})),
     "sha256"),
    ("unreferenced array", lambda d: _rewrite_npz(d, lambda a: a.update({"extra/x": np.zeros(1)})), "extra/x"),
    ("edge to missing node", lambda d: _edit_json(d, lambda doc: doc["edges"][0].update(src="ghost")), "ghost"),
    ("invalid json", lambda d: (d / GRAPH_FILE).write_text("{not json"), "not valid JSON"),
    ("corrupt npz", lambda d: (d / WEIGHTS_FILE).write_bytes(b"PK\x03\x04garbage"), WEIGHTS_FILE),
    ("missing weights", lambda d: (d / WEIGHTS_FILE).unlink(), "missing"),
    ("verifier failure", lambda d: _edit_json(d, lambda doc: doc.update(outputs=[])), "graph.outputs is empty"),
]


@pytest.mark.parametrize("label,breaker,needle", REJECT, ids=[r[0] for r in REJECT])
def test_load_rejects(tmp_path, label, breaker, needle):
    d = _saved(tmp_path)
    breaker(d)
    with pytest.raises(IRError) as exc:
        load_graph(d)
    assert needle in str(exc.value), str(exc.value)


def test_load_missing_directory(tmp_path):
    with pytest.raises(IRError, match="no such directory"):
        load_graph(tmp_path / "nope")
    (tmp_path / "f").write_text("x")
    with pytest.raises(IRError, match="not a directory"):
        load_graph(tmp_path / "f")


def test_unserialisable_meta_rejected(tmp_path):
    g = float_graph()
    g.meta["bad"] = object()
    with pytest.raises(IRError, match="graph.meta.bad"):
        save_graph(g, tmp_path / "m")


def _mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    kind = rng.randrange(4)
    if kind == 0:  # flip bytes
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            b[i] = rng.randrange(256)
    elif kind == 1:  # truncate
        b = b[: rng.randrange(len(b))]
    elif kind == 2:  # insert garbage
        i = rng.randrange(len(b))
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    else:  # duplicate a slice
        i = rng.randrange(len(b))
        j = min(len(b), i + rng.randint(1, 64))
        b[i:i] = b[i:j]
    return bytes(b)


def _mutate_json(doc, rng: random.Random):
    doc = copy.deepcopy(doc)
    junk = [None, -1, 0, 1.5, "x", [], {}, True, 10**12, float("1e308")]
    target = rng.choice(["top", "node", "edge", "array"])
    if target == "top":
        k = rng.choice(list(doc))
        doc[k] = rng.choice(junk) if rng.random() < 0.7 else doc.pop(k, None)
    elif target == "node":
        n = rng.choice(doc["nodes"])
        section = rng.choice(["attrs", "arrays", "name", "type"])
        if section in ("attrs", "arrays") and n[section]:
            k = rng.choice(list(n[section]))
            if rng.random() < 0.5:
                del n[section][k]
            else:
                n[section][k] = rng.choice(junk)
        else:
            n[section] = rng.choice(junk)
    elif target == "edge" and doc["edges"]:
        e = rng.choice(doc["edges"])
        e[rng.choice(["src", "dst", "port", "delay", "order"])] = rng.choice(junk)
    else:
        n = rng.choice([n for n in doc["nodes"] if n["arrays"]])
        ref = n["arrays"][rng.choice(list(n["arrays"]))]
        ref[rng.choice(["key", "dtype", "shape", "sha256"])] = rng.choice(junk + [[2, 2], "float64", "O"])
    return doc


def test_fuzz_graph_files_raise_only_neurocompile_errors(tmp_path):
    d = _saved(tmp_path)
    good_json = (d / GRAPH_FILE).read_bytes()
    good_npz = (d / WEIGHTS_FILE).read_bytes()
    doc = json.loads(good_json)
    rng = random.Random(1234)
    outcomes = {"ok": 0, "error": 0}
    for i in range(200):
        target = tmp_path / f"m{i}"
        target.mkdir()
        mode = i % 3
        js, npz = good_json, good_npz
        if mode == 0:
            js = _mutate_bytes(good_json, rng)
        elif mode == 1:
            npz = _mutate_bytes(good_npz, rng)
        else:
            js = json.dumps(_mutate_json(doc, rng)).encode()
        (target / GRAPH_FILE).write_bytes(js)
        (target / WEIGHTS_FILE).write_bytes(npz)
        try:
            load_graph(target)
            outcomes["ok"] += 1
        except NeurocompileError:
            outcomes["error"] += 1
    assert outcomes["error"] > 150, outcomes
