"""A uniform view of a model's module hierarchy, whatever file it came from.

The recogniser in :mod:`neurocompile.frontend.trace` works on :class:`ModuleView` trees, built here from

- an eager ``nn.Module`` (``named_modules``; scalar attributes such as ``tau`` read from the module),
- a TorchScript ``ScriptModule`` (its submodule hierarchy, ``original_name`` and qualified type names, and the
  parameters; scalar hyper-parameters are not kept by ``torch.jit.trace``),
- a ``torch.export`` ``ExportedProgram`` (the ``nn_module_stack`` metadata of its graph nodes gives module paths and
  class names, ``state_dict`` / ``constants`` give the parameters by fully-qualified name).

For the two graph formats, :class:`Evidence` lists, per module path and in execution order, the operators executed
inside the module and the float literals they use. The recogniser reads hyper-parameters that a file does not store
as attributes (LIF ``tau``, norm ``eps``, pre/post norm position, GSU threshold) from it when no config is given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["ModuleView", "Evidence", "ModuleTree", "tree_from_module", "tree_from_script", "tree_from_export"]


@dataclass
class ModuleView:
    """One module: path (``''`` for the root), class name and qualified name, own tensors, scalar attributes."""

    path: str
    kind: str
    qualname: str
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)  # own parameters and buffers (no recursion)
    attrs: dict[str, Any] = field(default_factory=dict)  # scalar attributes known from the file (eager only)
    children: dict[str, ModuleView] = field(default_factory=dict)
    module: nn.Module | None = None  # the eager module, when there is one

    @property
    def ours(self) -> bool:
        """True for neurocompile's reference model classes."""
        return self.qualname.startswith("neurocompile.models.")

    @property
    def torch_nn(self) -> bool:
        return self.qualname.startswith("torch.nn.")

    def child(self, name: str) -> ModuleView | None:
        return self.children.get(name)

    def walk(self):
        yield self
        for c in self.children.values():
            yield from c.walk()


@dataclass
class Evidence:
    """Operators and float literals per module path, in execution order (TorchScript / torch.export only)."""

    ops: dict[str, list[tuple[str, list[float]]]] = field(default_factory=dict)  # innermost path -> [(op, floats)]
    strings: dict[str, list[tuple[str, list[str]]]] = field(default_factory=dict)  # innermost path -> [(op, strs)]
    first_seen: dict[str, int] = field(default_factory=dict)  # path (any level) -> first op index
    count: int = 0

    def literals(self, path: str, op: str) -> list[float]:
        """Float literals of the ops named ``op`` (e.g. 'mul') executed directly inside ``path``, in order."""
        out: list[float] = []
        for name, floats in self.ops.get(path, []):
            if name == op:
                out.extend(floats)
        return out

    def op_literals(self, path: str, op: str) -> list[list[float]]:
        """Per-op float literal lists for ops named ``op`` inside ``path``."""
        return [floats for name, floats in self.ops.get(path, []) if name == op]

    def string_literals(self, path: str, op: str) -> list[str]:
        """String literals (e.g. GELU's ``approximate``) of the ops named ``op`` inside ``path``."""
        return [s for name, strs in self.strings.get(path, []) if name == op for s in strs]

    def record(self, stack: list[str], op: str, floats: list[float], strs: list[str] | None = None) -> None:
        for p in stack:
            self.first_seen.setdefault(p, self.count)
        self.count += 1
        key = stack[-1] if stack else ""
        self.ops.setdefault(key, []).append((op, floats))
        if strs:
            self.strings.setdefault(key, []).append((op, strs))


@dataclass
class ModuleTree:
    root: ModuleView
    evidence: Evidence | None = None
    fmt: str = "module"  # 'module' | 'torchscript' | 'export'

    def find(self, path: str) -> ModuleView | None:
        view = self.root
        if path == "":
            return view
        for part in path.split("."):
            nxt = view.children.get(part)
            if nxt is None:
                return None
            view = nxt
        return view


# ---------------------------------------------------------------------------------------------------------- eager
_SCALAR_TYPES = (bool, int, float, str)


def _own_tensors(m: nn.Module) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in m.named_parameters(recurse=False):
        out[k] = v.detach()
    for k, v in m.named_buffers(recurse=False):
        if v is not None:
            out[k] = v.detach()
    return out


def tree_from_module(module: nn.Module) -> ModuleTree:
    """View of an eager module: class names, own tensors and scalar attributes of every submodule."""

    def build(path: str, m: nn.Module) -> ModuleView:
        cls = type(m)
        attrs = {k: v for k, v in vars(m).items() if isinstance(v, _SCALAR_TYPES) and not k.startswith("_")}
        if isinstance(m, nn.LayerNorm):
            attrs["normalized_shape"] = tuple(m.normalized_shape)
        view = ModuleView(path, cls.__name__, f"{cls.__module__}.{cls.__qualname__}", _own_tensors(m), attrs,
                          module=m)
        for name, child in m.named_children():
            view.children[name] = build(f"{path}.{name}" if path else name, child)
        return view

    return ModuleTree(build("", module), None, "module")


# ---------------------------------------------------------------------------------------------------------- TorchScript
def _clean_qualname(q: str) -> str:
    q = q.removeprefix("__torch__.")
    return re.sub(r"\.___torch_mangle_\d+", "", q)


def _script_literals(node) -> tuple[list[float], list[str]]:
    out: list[float] = []
    strs: list[str] = []
    for inp in node.inputs():
        src = inp.node()
        if src.kind() != "prim::Constant":
            continue
        try:
            v = inp.toIValue()
        except Exception:  # non-representable constant
            continue
        if isinstance(v, torch.Tensor) and v.numel() == 1 and v.is_floating_point():
            out.append(float(v.item()))
        elif isinstance(v, float):
            out.append(v)
        elif isinstance(v, str):
            strs.append(v)
    return out, strs


def _script_evidence(root: torch.jit.ScriptModule) -> Evidence:
    ev = Evidence()

    def walk(mod, method: str, stack: list[str], depth: int) -> None:
        if depth > 64:
            return
        graph = getattr(mod, method).graph
        owner: dict[Any, str] = {}  # value -> attribute path relative to self
        self_val = next(iter(graph.inputs()))
        owner[self_val] = ""
        for node in graph.nodes():
            kind = node.kind()
            if kind == "prim::GetAttr":
                src = node.inputsAt(0)
                if src in owner:
                    base = owner[src]
                    owner[node.output()] = f"{base}.{node.s('name')}" if base else node.s("name")
            elif kind == "prim::CallMethod":
                target = node.inputsAt(0)
                rel = owner.get(target)
                if rel is None:
                    continue
                sub = mod
                for part in rel.split("."):
                    sub = getattr(sub, part)
                here = stack[-1] if stack else ""
                path = f"{here}.{rel}" if here else rel
                walk(sub, node.s("name"), stack + [path], depth + 1)
            elif kind.startswith("aten::"):
                ev.record(stack, kind[len("aten::"):], *_script_literals(node))

    walk(root, "forward", [""], 0)
    return ev


def tree_from_script(module: torch.jit.ScriptModule) -> ModuleTree:
    """View of a TorchScript module; hyper-parameters come from the :class:`Evidence` of its graphs."""

    def build(path: str, m) -> ModuleView:
        q = _clean_qualname(m._c._type().qualified_name())
        kind = getattr(m, "original_name", q.rsplit(".", 1)[-1])
        tensors = {}
        for k, v in m.named_parameters(recurse=False):
            tensors[k] = v.detach()
        for k, v in m.named_buffers(recurse=False):
            tensors[k] = v.detach()
        view = ModuleView(path, kind, q, tensors)
        for name, child in m.named_children():
            view.children[name] = build(f"{path}.{name}" if path else name, child)
        return view

    try:
        ev = _script_evidence(module)
    except Exception:  # evidence is best effort: missing evidence is reported when a value is needed
        ev = None
    return ModuleTree(build("", module), ev, "torchscript")


# ---------------------------------------------------------------------------------------------------------- export
def _norm_path(p: str) -> str:
    p = p.replace("L['self']", "").replace("L__self__", "")
    p = re.sub(r"\[['\"]?([^\]'\"]+)['\"]?\]", r".\1", p)
    p = re.sub(r"\._modules\.", ".", p)
    return p.strip(".")


def _type_name(t: Any) -> str:
    if isinstance(t, type):
        return f"{t.__module__}.{t.__qualname__}"
    s = str(t)
    m = re.match(r"<class '([^']+)'>", s)
    return m.group(1) if m else s


def _flat_floats(args: Any) -> list[float]:
    out: list[float] = []
    for a in args:
        if isinstance(a, float):
            out.append(a)
        elif isinstance(a, (list, tuple)):
            out.extend(x for x in a if isinstance(x, float))
    return out


def tree_from_export(program: torch.export.ExportedProgram) -> ModuleTree:
    """View of an exported program from ``nn_module_stack`` metadata and its state_dict / constants."""
    kinds: dict[str, str] = {}
    ev = Evidence()
    for node in program.graph.nodes:
        stack_meta = node.meta.get("nn_module_stack") or {}
        stack = [""]
        for _key, (path, typ) in stack_meta.items():
            p = _norm_path(str(path))
            kinds.setdefault(p, _type_name(typ))
            if p != stack[-1]:
                stack.append(p)
        if node.op == "call_function":
            name = getattr(node.target, "__name__", str(node.target))
            op = str(name).split(".")[0]
            strs = [a for a in list(node.args) + list(node.kwargs.values()) if isinstance(a, str)]
            ev.record(stack, op, _flat_floats(node.args) + _flat_floats(node.kwargs.values()), strs)
    tensors: dict[str, torch.Tensor] = {}
    for k, v in program.state_dict.items():
        tensors[k] = v.detach() if isinstance(v, torch.Tensor) else v
    for k, v in getattr(program, "constants", {}).items():
        if isinstance(v, torch.Tensor):
            tensors.setdefault(k, v.detach())
    root_kind = kinds.get("", "")
    root = ModuleView("", root_kind.rsplit(".", 1)[-1], root_kind)

    def ensure(path: str) -> ModuleView:
        view = root
        if not path:
            return view
        acc = ""
        for part in path.split("."):
            acc = f"{acc}.{part}" if acc else part
            nxt = view.children.get(part)
            if nxt is None:
                q = kinds.get(acc, "")
                nxt = ModuleView(acc, q.rsplit(".", 1)[-1] if q else "", q)
                view.children[part] = nxt
            view = nxt
        return view

    for p in sorted(kinds, key=lambda s: (s.count("."), s)):
        ensure(p)
    for k, v in tensors.items():
        owner, _, name = k.rpartition(".")
        ensure(owner).tensors[name] = v
    # Children in execution order (the order the graph first used them), as named_children would list them.
    for view in root.walk():
        view.children = dict(sorted(view.children.items(), key=lambda kv: (ev.first_seen.get(kv[1].path, 1 << 60),
                                                                          _natural(kv[0]))))
    return ModuleTree(root, ev, "export")


def _natural(s: str) -> tuple:
    return (0, int(s), "") if s.isdigit() else (1, 0, s)


def as_numpy(t: torch.Tensor) -> np.ndarray:
    """Detached CPU NumPy copy of a tensor (complex kept complex)."""
    return t.detach().to("cpu").resolve_conj().numpy().copy()
