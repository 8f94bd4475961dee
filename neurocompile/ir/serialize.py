"""Deterministic save/load of an IR :class:`~neurocompile.ir.graph.Graph` (float or integer nodes).

A saved graph is a directory with two files:

- ``graph.json``: ``{"format": "neurocompile-ir", "version": 1, "name", "inputs", "outputs", "meta",
  "nodes": [{"name", "type", "attrs": {field: scalar}, "arrays": {field: {"key", "dtype", "shape", "sha256"}}}],
  "edges": [{"src", "dst", "port", "delay", "order"}]}``, written with sorted keys and a fixed indent. Nodes
  are listed in insertion order (it breaks ties in :meth:`Graph.order`), edges by destination then edge order.
- ``weights.npz``: one ``.npy`` entry per array, named ``<node>/<field>.npy``, written with fixed timestamps and
  sorted names, so saving the same graph twice gives byte-identical files. Entries are deflated; those of 128 KiB
  or more (large models only) are stored when floating-point (they barely compress) and deflated at level 1 when
  integer, which any zip reader reads the same way (export time, not the format).

Loading trusts nothing: it never unpickles (``allow_pickle=False``), reads each entry's ``.npy`` header before its
data, and checks every array against the dtype, shape and SHA-256 that ``graph.json`` declares. Any problem raises
:class:`~neurocompile.errors.IRError` naming the file and the key. :func:`load_graph` then runs the verifier
(:func:`neurocompile.ir.verify.check`) unless ``verify=False``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from neurocompile.errors import IRError
from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.ir.nodes import FLOAT_NODES, Node
from neurocompile.ir.verify import check, field_defaults

__all__ = [
    "FORMAT",
    "SCHEMA_VERSION",
    "GRAPH_FILE",
    "WEIGHTS_FILE",
    "NODE_TYPES",
    "save_graph",
    "load_graph",
    "graph_to_dict",
    "graph_from_dict",
    "graph_to_bytes",
]

FORMAT = "neurocompile-ir"
SCHEMA_VERSION = 1
SUPPORTED_VERSIONS = (1,)
GRAPH_FILE = "graph.json"
WEIGHTS_FILE = "weights.npz"
#: Every node class the serialiser knows, by type name.
NODE_TYPES: dict[str, type[Node]] = {**FLOAT_NODES, **hw.INT_NODES}
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_ALLOWED_KINDS = "biufc"  # bool, int, uint, float, complex: never object / void / str
_BIG_ARRAY = 1 << 17  # arrays of this many bytes or more are stored or deflated at level 1 (export time)
_encode_str = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]  # json's own (C) string quoting


# ---------------------------------------------------------------------------------------------------------- to dict
def _jsonable(obj: Any, where: str) -> Any:
    """Plain-JSON copy of ``obj`` (numpy scalars, tuples, paths converted); IRError on anything else."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        if not math.isfinite(v):
            raise IRError(f"{where} = {v} is not finite; graph.json cannot hold NaN/Inf (fix the value)")
        return v
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (list, tuple)):
        if _finite_numbers(obj):  # long float lists (mode bases): copied whole, not element by element
            return list(obj)
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise IRError(f"{where} has a non-string key {k!r}; graph.json keys must be strings")
            out[k] = _jsonable(v, f"{where}.{k}")
        return out
    raise IRError(f"{where} is a {type(obj).__name__}, which graph.json cannot hold (use numbers, strings, lists, dicts)")


def _sha(a: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(f"{a.dtype.str}{list(a.shape)}".encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _node_type_name(name: str, node: Node) -> str:
    t = type(node).__name__
    if NODE_TYPES.get(t) is not type(node):
        raise IRError(f"node '{name}' has type {t}, which is not an IR node class; known: {', '.join(sorted(NODE_TYPES))}")
    return t


def graph_to_dict(graph: Graph, arrays: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """The ``graph.json`` content of ``graph``; fills ``arrays`` (if given) with ``<node>/<field>`` -> array.

    The dict is JSON-able and deterministic; each array is referenced by key, dtype, shape and SHA-256, so two
    dicts compare equal exactly when the graphs have the same structure, attributes and array contents.
    """
    nodes = []
    for name in graph.g.nodes:
        data = graph.g.nodes[name]
        if "node" not in data:
            raise IRError(f"graph '{graph.name}': name '{name}' has edges but no node object; cannot serialise")
        node: Node = data["node"]
        t = _node_type_name(name, node)
        attrs: dict[str, Any] = {}
        arrs: dict[str, Any] = {}
        for f in dataclasses.fields(node):
            v = getattr(node, f.name)
            if isinstance(v, np.ndarray):
                if v.dtype.kind not in _ALLOWED_KINDS:
                    raise IRError(f"node '{name}' field {f.name} has dtype {v.dtype}; only numeric arrays are saved")
                key = f"{name}/{f.name}"
                arrs[f.name] = {"key": key, "dtype": v.dtype.str, "shape": list(v.shape), "sha256": _sha(v)}
                if arrays is not None:
                    arrays[key] = v
            else:
                attrs[f.name] = _jsonable(v, f"node '{name}' field {f.name}")
        nodes.append({"name": name, "type": t, "attrs": attrs, "arrays": arrs})
    rank = {n: i for i, n in enumerate(graph.g.nodes)}
    edges = []
    for u, v, d in sorted(graph.g.edges(data=True), key=lambda e: (rank[e[1]], e[2].get("order", 0), rank[e[0]])):
        edges.append({"src": u, "dst": v, "port": d.get("port", "in"), "delay": int(d.get("delay", 0)),
                      "order": int(d.get("order", 0))})
    return {
        "format": FORMAT,
        "version": SCHEMA_VERSION,
        "name": graph.name,
        "inputs": list(graph.inputs),
        "outputs": list(graph.outputs),
        "meta": _jsonable(graph.meta, "graph.meta"),
        "nodes": nodes,
        "edges": edges,
    }


def _finite_numbers(seq: list[Any] | tuple[Any, ...]) -> bool:
    """True when ``seq`` holds only plain finite floats, or only plain ints (bools excluded), and is not empty."""
    if not seq:
        return False
    kind = type(seq[0])
    if kind is float:
        return all(type(v) is float for v in seq) and all(map(math.isfinite, seq))
    return kind is int and all(type(v) is int for v in seq)


def _pretty(obj: Any, level: int, out: list[str]) -> None:
    """Append the text ``json.dumps(obj, sort_keys=True, indent=1, allow_nan=False, ensure_ascii=True)`` gives
    ``obj`` at nesting ``level``, for the plain JSON values :func:`_jsonable` returns; lists of numbers are
    joined at once instead of encoded one element at a time (the same bytes, several times faster)."""
    if isinstance(obj, str):
        out.append(_encode_str(obj))
    elif obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, int):
        out.append(int.__repr__(obj))
    elif isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError(f"Out of range float values are not JSON compliant: {obj!r}")
        out.append(float.__repr__(obj))
    elif isinstance(obj, (list, tuple)):
        if not obj:
            out.append("[]")
            return
        sep = "\n" + " " * (level + 1)
        out.append("[" + sep)
        if _finite_numbers(obj):
            out.append(("," + sep).join(map(float.__repr__ if type(obj[0]) is float else int.__repr__, obj)))
        else:
            for i, v in enumerate(obj):
                if i:
                    out.append("," + sep)
                _pretty(v, level + 1, out)
        out.append("\n" + " " * level + "]")
    elif isinstance(obj, dict):
        if not obj:
            out.append("{}")
            return
        sep = "\n" + " " * (level + 1)
        out.append("{" + sep)
        for i, k in enumerate(sorted(obj)):
            if i:
                out.append("," + sep)
            out.append(_encode_str(k) + ": ")
            _pretty(obj[k], level + 1, out)
        out.append("\n" + " " * level + "}")
    else:
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _plain_keys(obj: Any) -> bool:
    """True when every dict in ``obj`` has only string keys (what :func:`_pretty` sorts and writes as json does)."""
    if isinstance(obj, dict):
        return all(isinstance(k, str) for k in obj) and all(_plain_keys(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return _finite_numbers(obj) or all(_plain_keys(v) for v in obj)
    return True


def _json_bytes(d: dict[str, Any]) -> bytes:
    if not _plain_keys(d):  # json.dumps converts and sorts non-string keys its own way
        return (json.dumps(d, sort_keys=True, indent=1, allow_nan=False, ensure_ascii=True) + "\n").encode("ascii")
    out: list[str] = []
    _pretty(d, 0, out)
    out.append("\n")
    return "".join(out).encode("ascii")


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(key + ".npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            if arrays[key].nbytes >= _BIG_ARRAY:
                # float weights barely deflate (~90 %): stored; integer ones deflate almost as well at level 1
                if arrays[key].dtype.kind in "fc":
                    info.compress_type = zipfile.ZIP_STORED
                else:
                    _set_level(info, 1)
            info.external_attr = 0o644 << 16
            info.create_system = 3
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(arrays[key]), allow_pickle=False)
    return buf.getvalue()


def _set_level(info: zipfile.ZipInfo, level: int) -> None:
    """Deflate level of one entry written through ``ZipFile.open(info, "w")`` (no public argument for it)."""
    if hasattr(info, "compress_level"):  # Python >= 3.13
        info.compress_level = level
    else:
        info._compresslevel = level  # type: ignore[attr-defined]


def graph_to_bytes(graph: Graph) -> tuple[bytes, bytes]:
    """``(graph.json bytes, weights.npz bytes)`` exactly as :func:`save_graph` writes them."""
    arrays: dict[str, np.ndarray] = {}
    d = graph_to_dict(graph, arrays)
    return _json_bytes(d), _npz_bytes(arrays)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_graph(graph: Graph, directory: str | os.PathLike) -> Path:
    """Write ``graph`` to ``directory`` (created if needed) as graph.json + weights.npz; returns the directory."""
    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise IRError(f"cannot save graph to {d}: it exists and is not a directory")
    js, npz = graph_to_bytes(graph)
    try:
        d.mkdir(parents=True, exist_ok=True)
        _write_atomic(d / WEIGHTS_FILE, npz)
        _write_atomic(d / GRAPH_FILE, js)
    except OSError as exc:
        raise IRError(f"cannot save graph to {d}: {exc}") from None
    return d


# ---------------------------------------------------------------------------------------------------------- from dict
def _need(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise IRError(f"{where}: {msg}")


def _scalar(value: Any, default: Any, where: str) -> Any:
    if isinstance(default, bool):
        _need(isinstance(value, bool), where, f"must be true/false, got {value!r}")
        return value
    if isinstance(default, int):
        _need(isinstance(value, int) and not isinstance(value, bool), where, f"must be an integer, got {value!r}")
        return value
    if isinstance(default, float):
        _need(isinstance(value, (int, float)) and not isinstance(value, bool), where, f"must be a number, got {value!r}")
        _need(math.isfinite(value), where, f"must be finite, got {value!r}")
        return float(value)
    if isinstance(default, str):
        _need(isinstance(value, str), where, f"must be a string, got {value!r}")
        return value
    return value


def _array_ref(ref: Any, arrays: dict[str, np.ndarray], where: str, source: str) -> np.ndarray:
    _need(isinstance(ref, dict), where, f"array reference must be an object, got {type(ref).__name__}")
    key, dtype, shape = ref.get("key"), ref.get("dtype"), ref.get("shape")
    _need(isinstance(key, str), where, "array reference has no string 'key'")
    _need(isinstance(dtype, str), where, "array reference has no string 'dtype'")
    _need(isinstance(shape, list) and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape),
          where, f"array reference 'shape' must be a list of integers >= 0, got {shape!r}")
    if key not in arrays:
        raise IRError(f"{source}: key '{key}' ({where}) is missing from the weights (file incomplete or mismatched)")
    a = arrays[key]
    try:
        want = np.dtype(dtype)
    except TypeError:
        raise IRError(f"{where}: unknown dtype {dtype!r}") from None
    if a.dtype != want or list(a.shape) != shape:
        raise IRError(f"{source}: key '{key}' has dtype {a.dtype} shape {list(a.shape)}, graph.json declares "
                      f"{want} {shape} ({where})")
    sha = ref.get("sha256")
    if sha is not None and sha != _sha(a):
        raise IRError(f"{source}: key '{key}' does not match the sha256 in graph.json ({where}); the file was "
                      f"changed or is corrupt")
    return a


def graph_from_dict(d: Any, arrays: dict[str, np.ndarray], source: str = "<dict>") -> Graph:
    """Rebuild a Graph from :func:`graph_to_dict` output and its arrays (``source`` names the file in errors)."""
    _need(isinstance(d, dict), source, f"top level must be an object, got {type(d).__name__}")
    fmt, version = d.get("format"), d.get("version")
    _need(fmt == FORMAT, source, f"'format' is {fmt!r}, expected {FORMAT!r} (not a neurocompile IR graph)")
    if version not in SUPPORTED_VERSIONS or isinstance(version, bool):
        raise IRError(f"{source}: unknown schema version {version!r}; this neurocompile reads versions "
                      f"{list(SUPPORTED_VERSIONS)} (re-export the graph with a matching neurocompile)")
    name = d.get("name")
    _need(isinstance(name, str), source, "'name' must be a string")
    g = Graph(name)
    for k in ("inputs", "outputs"):
        v = d.get(k)
        _need(isinstance(v, list) and all(isinstance(s, str) for s in v), source, f"'{k}' must be a list of names")
    meta = d.get("meta", {})
    _need(isinstance(meta, dict), source, "'meta' must be an object")
    nodes, edges = d.get("nodes"), d.get("edges")
    _need(isinstance(nodes, list), source, "'nodes' must be a list")
    _need(isinstance(edges, list), source, "'edges' must be a list")
    used_keys: set[str] = set()
    for i, nd in enumerate(nodes):
        where = f"{source}: nodes[{i}]"
        _need(isinstance(nd, dict), where, "must be an object")
        nname, t = nd.get("name"), nd.get("type")
        _need(isinstance(nname, str) and nname != "", where, "'name' must be a non-empty string")
        where = f"{source}: node '{nname}'"
        if not isinstance(t, str) or t not in NODE_TYPES:
            raise IRError(f"{where}: unknown node type {t!r}; known: {', '.join(sorted(NODE_TYPES))}")
        cls = NODE_TYPES[t]
        defaults = field_defaults(cls)
        attrs, arrs = nd.get("attrs", {}), nd.get("arrays", {})
        _need(isinstance(attrs, dict) and isinstance(arrs, dict), where, "'attrs' and 'arrays' must be objects")
        kwargs: dict[str, Any] = {}
        for k, v in attrs.items():
            if k not in defaults or isinstance(defaults[k], np.ndarray):
                raise IRError(f"{where}: {t} has no scalar field '{k}' (fields: {', '.join(defaults)})")
            kwargs[k] = _scalar(v, defaults[k], f"{where} field {k}")
        for k, ref in arrs.items():
            if k not in defaults or not isinstance(defaults[k], np.ndarray):
                raise IRError(f"{where}: {t} has no array field '{k}' (fields: {', '.join(defaults)})")
            a = _array_ref(ref, arrays, f"node '{nname}' field {k}", source)
            used_keys.add(ref["key"])
            kwargs[k] = a
        try:
            node = cls(**kwargs)
        except Exception as exc:  # dataclass construction of a malformed node
            raise IRError(f"{where}: cannot build {t}: {exc}") from None
        if nname in g:
            raise IRError(f"{where}: duplicate node name")
        g.add(nname, node)
    for i, e in enumerate(edges):
        where = f"{source}: edges[{i}]"
        _need(isinstance(e, dict), where, "must be an object")
        src, dst, port = e.get("src"), e.get("dst"), e.get("port", "in")
        delay, order = e.get("delay", 0), e.get("order", i)
        _need(isinstance(src, str) and src in g, where, f"'src' {src!r} is not a node")
        _need(isinstance(dst, str) and dst in g, where, f"'dst' {dst!r} is not a node")
        _need(isinstance(port, str), where, f"'port' must be a string, got {port!r}")
        _need(isinstance(delay, int) and not isinstance(delay, bool) and delay >= 0, where,
              f"'delay' must be an integer >= 0, got {delay!r}")
        _need(isinstance(order, int) and not isinstance(order, bool), where, f"'order' must be an integer, got {order!r}")
        _need(not g.g.has_edge(src, dst), where, f"duplicate edge {src} -> {dst}")
        g.g.add_edge(src, dst, port=port, delay=delay, order=order)
    extra = sorted(set(arrays) - used_keys)
    if extra:
        raise IRError(f"{source}: weights hold key '{extra[0]}' that graph.json does not reference "
                      f"({len(extra)} unreferenced; the files do not belong together)")
    g.inputs = list(d["inputs"])
    g.outputs = list(d["outputs"])
    g.meta = meta
    return g


# ---------------------------------------------------------------------------------------------------------- files
def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Read every ``.npy`` entry of ``path`` without unpickling, header first (sizes checked before reading)."""
    out: dict[str, np.ndarray] = {}
    try:
        zf = zipfile.ZipFile(path)
    except Exception as exc:  # BadZipFile, OSError, NotImplementedError (bad version field), ...
        raise IRError(f"{path}: not a readable .npz archive ({type(exc).__name__}: {exc}); re-save the graph") from None
    with zf:
        for info in zf.infolist():
            name = info.filename
            if not name.endswith(".npy"):
                raise IRError(f"{path}: entry '{name}' is not a .npy array")
            key = name[:-4]
            if key in out:
                raise IRError(f"{path}: key '{key}' appears twice")
            try:
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                    elif version == (2, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                    else:
                        raise ValueError(f"unsupported .npy version {version}")
                    if dtype.kind not in _ALLOWED_KINDS or dtype.hasobject:
                        raise ValueError(f"dtype {dtype} is not a numeric dtype")
                    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
                    if count < 0 or count * dtype.itemsize != info.file_size - f.tell():
                        raise ValueError(f"header says {shape} {dtype} but the entry holds "
                                         f"{info.file_size - f.tell()} data bytes")
                    data = f.read(count * dtype.itemsize)
                    if len(data) != count * dtype.itemsize:
                        raise ValueError("entry is truncated")
                    a = np.frombuffer(data, dtype=dtype).copy()
                    a = a.reshape(shape, order="F" if fortran else "C")
                    out[key] = np.ascontiguousarray(a)
            except IRError:
                raise
            except Exception as exc:  # zlib/zip/header errors of a corrupt entry
                raise IRError(f"{path}: key '{key}' cannot be read ({type(exc).__name__}: {exc}); "
                              f"the file is corrupt, re-save the graph") from None
    return out


def load_graph(directory: str | os.PathLike, verify: bool = True) -> Graph:
    """Load a graph saved by :func:`save_graph`; runs :func:`~neurocompile.ir.verify.check` unless ``verify=False``."""
    d = Path(directory)
    if not d.exists():
        raise IRError(f"{d}: no such directory (expected a saved graph with {GRAPH_FILE} and {WEIGHTS_FILE})")
    if not d.is_dir():
        raise IRError(f"{d}: not a directory (a saved graph is a directory with {GRAPH_FILE} and {WEIGHTS_FILE})")
    gpath, wpath = d / GRAPH_FILE, d / WEIGHTS_FILE
    for p in (gpath, wpath):
        if not p.is_file():
            raise IRError(f"{p}: missing; a saved graph needs both {GRAPH_FILE} and {WEIGHTS_FILE}")
    try:
        raw = gpath.read_bytes()
        doc = json.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise IRError(f"{gpath}: not valid JSON ({type(exc).__name__}: {exc})") from None
    arrays = _read_npz(wpath)
    g = graph_from_dict(doc, arrays, source=str(gpath))
    if verify:
        check(g)
    return g
