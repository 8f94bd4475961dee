"""Build the float IR from the dataflow of a ``torch.export`` program (any root class, any wiring).

The program is run once on a probe input, keeping every value. Then:

1. SSM layers are found by parameter signature (:mod:`~neurocompile.frontend.recognise_ssm`) and proved: a value
   computed inside the layer's module must equal the diagonal modes' closed form applied to the layer's input.
   The ops that computed it (kernel, FFT convolution, D skip) become one ``S4D`` node.
2. Spiking modules (a module, other than the root, whose ops compare a value with a threshold and which holds no
   SSM) are probed by re-running the program with designed inputs injected at their input and fitted to the IR's
   neuron templates (:mod:`~neurocompile.frontend.recognise_neuron`); a neuron called step by step in a loop is
   one module whose per-step outputs are stacked over time.
3. The remaining ATen ops give the wiring: ``linear`` / kernel-1 ``conv1d`` (Affine), ``embedding``,
   ``layer_norm`` / ``batch_norm`` with running statistics (Norm), ``add`` of two streams (Add), ``mean`` over
   time (MeanPool), ``glu`` or ``a * sigmoid(b)`` on the two halves of a ``chunk``/``split`` (GLU), ``sigmoid`` /
   ``gelu`` / ``relu`` (Activation), ``dropout`` in eval mode (removed), transposes and views (layout only), and a
   per-channel positive scale, which is folded into the next neuron's thresholds or kept as a diagonal Affine.

Anything else raises :class:`~neurocompile.errors.UnsupportedOpError` on one line naming the module path, the op
and what was expected, when (and only when) its value reaches the model's output.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from neurocompile.errors import UnsupportedOpError
from neurocompile.frontend.recognise_neuron import fit_neuron
from neurocompile.frontend.recognise_ssm import (
    SSMParams,
    closed_form,
    find_ssm_params,
    to_node,
)
from neurocompile.ir import nodes as fl
from neurocompile.ir.graph import Graph

__all__ = ["Program", "build_graph"]

_VIEW_OPS = {"transpose", "permute", "contiguous", "clone", "alias", "detach", "view", "reshape", "unsqueeze",
             "squeeze", "select", "slice", "to", "_to_copy", "expand", "t", "flatten", "lift_fresh_copy"}
_COMPARE = {"ge", "gt", "le", "lt", "heaviside", "eq"}
_SKIP = {"_assert_tensor_metadata", "_assert_scalar", "sym_size", "sym_constrain_range_for_size"}


def _op(node) -> str:
    t = node.target
    name = getattr(t, "__name__", str(t))
    if hasattr(t, "_schema"):
        name = t._schema.name.split("::")[-1]
    elif hasattr(t, "_qualified_op_name"):  # an op packet (graphs read from TorchScript)
        name = t._qualified_op_name.split("::")[-1]
    return name.split(".")[0]


class Program:
    """A torch.export program with module paths per node and a value cache."""

    def __init__(self, ep: torch.export.ExportedProgram) -> None:
        self.ep = ep
        self.graph = ep.graph
        self.nodes = list(self.graph.nodes)
        sig = ep.graph_signature
        self.params: dict[str, torch.Tensor] = {}
        self.user_inputs = []
        const = dict(ep.state_dict)
        const.update({k: v for k, v in getattr(ep, "constants", {}).items()})
        for spec in sig.input_specs:
            name = getattr(spec.arg, "name", None)
            if spec.kind.name == "USER_INPUT":
                self.user_inputs.append(name)
            elif spec.target in const:
                self.params[name] = const[spec.target].detach()
        self.tensors = {k: v for k, v in const.items() if isinstance(v, torch.Tensor)}
        self.stack: dict[Any, list[str]] = {}
        self.kinds: dict[str, str] = {}
        for n in self.nodes:
            st = n.meta.get("nn_module_stack") or {}
            paths = [""]
            for _k, (p, typ) in st.items():
                p = _norm(str(p))
                self.kinds.setdefault(p, getattr(typ, "__name__", str(typ)).rsplit(".", 1)[-1].strip("'>"))
                if p != paths[-1]:
                    paths.append(p)
            self.stack[n] = paths
        self.users = {n: list(n.users) for n in self.nodes}
        self.depends = set()  # nodes whose value depends on a user input
        for n in self.nodes:
            if n.op == "placeholder" and n.name in self.user_inputs or any(a in self.depends for a in n.all_input_nodes):
                self.depends.add(n)

    def path(self, n) -> str:
        return self.stack[n][-1]

    def runner(self, src, target, base: dict):
        """A function value -> value of ``target`` with ``src`` replaced, re-running only the nodes between them."""
        need, todo = set(), [target]
        while todo:
            n = todo.pop()
            if n in need or n is src:
                continue
            need.add(n)
            todo.extend(n.all_input_nodes)
        affected = {src}
        for n in self.nodes:
            if n in need and any(a in affected for a in n.all_input_nodes):
                affected.add(n)
        order = [n for n in self.nodes if n in affected and n is not src]

        def run(value: torch.Tensor) -> torch.Tensor:
            env = {src: value}
            get = lambda a: env[a] if a in env else base[a]
            for n in order:
                if _op(n) in _SKIP:
                    env[n] = None
                    continue
                env[n] = n.target(*torch.fx.node.map_arg(n.args, get), **torch.fx.node.map_arg(n.kwargs, get))
            return env[target]

        return run

    def run(self, x: dict[str, torch.Tensor], override: dict | None = None, targets: list | None = None,
            base: dict | None = None) -> dict:
        """Values of all nodes (or of those ``targets`` need), with ``override`` values injected."""
        env: dict = {}
        need = None
        if targets is not None:
            need = set()
            todo = list(targets)
            while todo:
                n = todo.pop()
                if n in need or (override and n in override):
                    continue
                need.add(n)
                todo.extend(n.all_input_nodes)
        affected: set = set()
        for n in self.nodes:
            if override and n in override:
                env[n] = override[n]
                affected.add(n)
                continue
            if base is not None and n in base and not any(a in affected for a in n.all_input_nodes):
                env[n] = base[n]
                continue
            if need is not None and n not in need:
                continue
            affected.add(n)
            if n.op == "placeholder":
                env[n] = x[n.name] if n.name in x else self.params[n.name]
            elif n.op == "call_function":
                if _op(n) in _SKIP:
                    env[n] = None
                    continue
                args = torch.fx.node.map_arg(n.args, lambda a: env[a])
                kwargs = torch.fx.node.map_arg(n.kwargs, lambda a: env[a])
                env[n] = n.target(*args, **kwargs)
            elif n.op == "get_attr":
                env[n] = getattr(self.ep.graph_module, n.target)
            elif n.op == "output":
                env[n] = torch.fx.node.map_arg(n.args[0], lambda a: env[a])
        return env


def _norm(p: str) -> str:
    import re

    p = p.replace("L['self']", "").replace("L__self__", "")
    p = re.sub(r"\[['\"]?([^\]'\"]+)['\"]?\]", r".\1", p)
    p = re.sub(r"\._modules\.", ".", p)
    p = re.sub(r"@\d+$", "", p)
    return p.strip(".")


# ---------------------------------------------------------------------------------------------------------- values
@dataclass
class Stream:
    """A per-step sequence held by IR node ``node``: tensor axes name 'b', 't', 'c' (or '1' for size-1 axes)."""

    node: str
    size: int
    axes: tuple[str, ...]
    scale: np.ndarray | None = None  # pending per-channel factor (folded into the next neuron or an Affine)


@dataclass
class Pooled:
    node: str
    size: int


@dataclass
class Half:
    """One contiguous channel range [lo, hi) of a stream (from chunk/split), maybe under a sigmoid."""

    src: Stream
    lo: int
    hi: int
    sigmoid: bool = False


@dataclass
class Bad:
    """A value the IR cannot express; raised only if it reaches the output."""

    message: str


class _Builder:
    def __init__(self, prog: Program, x: torch.Tensor, name: str) -> None:
        self.p = prog
        self.x = x
        self.g = Graph(name)
        with torch.no_grad():
            self.base = prog.run({prog.user_inputs[0]: x})
        self.env: dict = {}
        self.units: dict = {}  # fx node -> ('ssm', info) | ('neuron', info)
        self.skip: set = set()
        self.stripped: list[dict[str, str]] = []
        self.proofs: list[dict[str, Any]] = []
        self.count: dict[str, int] = {}

    # ------------------------------------------------------------------ naming
    def name(self, n, suffix: str) -> str:
        base = self.p.path(n) or "model"
        nm = f"{base}.{suffix}"
        k = self.count.get(nm, 0)
        self.count[nm] = k + 1
        return nm if k == 0 else f"{nm}_{k}"

    def where(self, n) -> str:
        return f"module '{self.p.path(n) or '<root>'}' ({self.p.kinds.get(self.p.path(n), '?')}), op {_op(n)}"

    # ------------------------------------------------------------------ SSMs
    def find_ssms(self) -> None:
        p = self.p
        for params in find_ssm_params(p.tensors, list(p.kinds)):
            region = [n for n in p.nodes if params.path in p.stack[n] or (params.path == "" and n.op != "placeholder")]
            if not region:
                continue
            self._prove(params, region)

    def _prove(self, sp: SSMParams, region: list) -> None:
        p = self.p
        rset = set(region)
        ins = {a for n in region for a in n.all_input_nodes if a not in rset and a in p.depends}
        src = {self._through_views(a) for a in ins}
        if len(src) != 1:
            raise UnsupportedOpError(f"SSM layer '{sp.path}': expected one input sequence, found {len(src)} "
                                     f"({', '.join(sorted(a.name for a in src))})")
        u_node = src.pop()
        u_val = self.base[u_node]
        T, H = self.x.shape[1], sp.H
        best = None
        for axes in _layouts(tuple(u_val.shape), T, H):
            u = _to_btc(u_val, axes).double().numpy()
            for method in ("zoh", "bilinear"):
                ref = closed_form(sp, u, method)
                scale = max(float(np.abs(ref).max()), 1e-12)
                for n in region:
                    v = self.base.get(n)
                    if n not in p.depends or not isinstance(v, torch.Tensor) or v.numel() != ref.size or \
                            v.is_complex():
                        continue
                    for oaxes in _layouts(tuple(v.shape), T, H):
                        err = float(np.abs(_to_btc(v, oaxes).double().numpy() - ref).max())
                        if err <= 1e-4 * scale and (best is None or region.index(n) > region.index(best[0])
                                                    and best[2] == method):
                            best = (n, oaxes, method, err, scale, axes)
            if best is not None:
                break
        if best is None:
            raise UnsupportedOpError(
                f"SSM layer '{sp.path}' has the S4D parameters ({', '.join(sorted(sp.keys.values()))}) but no value "
                f"it computes equals the diagonal modes' output (zero-order hold or bilinear) on a probe; "
                f"a different parameterisation is not supported")
        y_node, oaxes, method, err, scale, _ = best
        consumed = self._ancestors_in(y_node, rset)
        self.units[y_node] = ("ssm", (sp, method, u_node, oaxes))
        self.skip |= consumed - {y_node}
        self.proofs.append({"module": sp.path, "recognised": f"S4D ({method})", "max_error": err,
                            "scale": scale, "params": sorted(sp.keys.values())})

    def _through_views(self, a):
        while a.op == "call_function" and _op(a) in _VIEW_OPS and a.all_input_nodes and a not in self.units:
            deps = [b for b in a.all_input_nodes if b in self.p.depends]
            if len(deps) != 1:
                break
            a = deps[0]
        return a

    def _ancestors_in(self, node, rset: set) -> set:
        out, todo = set(), [node]
        while todo:
            n = todo.pop()
            if n in out or n not in rset:
                continue
            out.add(n)
            todo.extend(n.all_input_nodes)
        return out

    # ------------------------------------------------------------------ neurons
    def find_neurons(self) -> None:
        p = self.p
        ssm_paths = {info[0].path for kind, info in self.units.values() if kind == "ssm"}
        cands: dict[str, None] = {}
        for n in p.nodes:
            if n.op != "call_function" or _op(n) not in _COMPARE or n in self.skip or n not in p.depends:
                continue
            chosen = None
            for path in reversed(p.stack[n][1:]):  # innermost to outermost called module, root excluded
                if any(s == path or s.startswith(path + ".") for s in ssm_paths):
                    break
                chosen = path
            if chosen is None:
                raise UnsupportedOpError(f"{self.where(n)}: a threshold comparison outside any neuron module; put the "
                                         f"spiking neuron in its own module (LIF, reset-refractory LIF or Heaviside)")
            cands[chosen] = None
        for path in cands:
            self._neuron(path)

    def _neuron(self, path: str) -> None:
        p = self.p
        region = [n for n in p.nodes if path in p.stack[n]]
        rset = set(region)
        ins = {a for n in region for a in n.all_input_nodes if a not in rset and a in p.depends}
        srcs = {self._through_views(a) for a in ins}
        srcs = {s for s in srcs if not _is_zeros(self.base.get(s))}
        if len(srcs) != 1:
            found = ", ".join(sorted(a.name for a in srcs)) or "none that depends on the model input"
            raise UnsupportedOpError(f"neuron module '{path}' ({p.kinds.get(path)}): expected one input sequence, "
                                     f"found {len(srcs)} ({found}); a neuron must be fed by one per-step sequence")
        src = srcs.pop()
        outs = [n for n in region if any(u not in rset for u in p.users[n]) and n in p.depends]
        out_node = self._assemble(outs, rset, path)
        x0 = self.base[src]
        T = self.x.shape[1]
        shape_out = tuple(self.base[out_node].shape)
        H = None
        for cand in (x0.shape[-1], x0.shape[1] if x0.dim() > 2 else None):
            if cand is not None and _layouts(tuple(x0.shape), T, cand):
                H = cand
                break
        axes_in = _layouts(tuple(x0.shape), T, H)[0]
        axes_out = _layouts(shape_out, T, H)[0]
        B = int(x0.shape[axes_in.index("b")]) if "b" in axes_in else 1

        sub = p.runner(src, out_node, self.base)

        def run(xb: np.ndarray) -> np.ndarray:
            inj = _from_btc(torch.as_tensor(xb, dtype=x0.dtype), axes_in, tuple(x0.shape))
            with torch.no_grad():
                return _to_btc(sub(inj), axes_out).double().numpy()

        own: dict[str, np.ndarray] = {}  # the module's per-channel tensors and their exp, in float32 as a model has them
        for k, v in p.tensors.items():
            if k.startswith(path + ".") and v.numel() in (1, H) and v.is_floating_point():
                short, f = k.rpartition(".")[2], v.detach().float().reshape(-1)
                own[short] = f.double().numpy()
                own[f"exp({short})"] = torch.exp(f).double().numpy()
        lits = sorted({_literal(a) for n in region for a in list(n.args) + list(n.kwargs.values())
                       if _literal(a) is not None})
        sdn = any(v.dim() == 3 and tuple(v.shape) == (8, 1, 8) for k, v in p.tensors.items()
                  if k.startswith(path + "."))
        fit = fit_neuron(run, (B, T, H), path, own, lits, approximate=sdn)
        self.units[out_node] = ("neuron", (fit, src, path, axes_out, sdn))
        self.skip |= rset - {out_node}
        proof = {"module": path, "recognised": fit.template, "probes": fit.probes, "agreement": fit.agreement,
                 "mismatches": fit.mismatches, "notes": fit.notes}
        if sdn:
            proof["notes"] = fit.notes + ["SDN (surrogate dynamic network) replaced by the exact LIF it stands for"]
            self.stripped.append({"module": path, "kind": "SDN", "reason": f"training-time surrogate dynamic network;"
                                  f" compiled as the exact LIF (spike agreement {fit.agreement:.5f} on the probe)",
                                  "_at": out_node.name})
        self.proofs.append(proof)

    def _assemble(self, outs: list, rset: set, path: str):
        if len(outs) == 1:
            return outs[0]
        users = {u for n in outs for u in self.p.users[n] if u not in rset}
        stacks = [u for u in users if _op(u) in ("stack", "cat")]
        if len(stacks) == 1:
            self.skip |= set(outs)
            return stacks[0]
        raise UnsupportedOpError(f"neuron module '{path}': its {len(outs)} outputs are not one sequence or per-step "
                                 f"spikes stacked over time")

    # ------------------------------------------------------------------ walk
    def build(self) -> Graph:
        self.find_ssms()
        self.find_neurons()
        p = self.p
        for n in p.nodes:
            if n.op == "placeholder":
                if n.name in p.user_inputs:
                    self.env[n] = self.input(n)
                continue
            if n.op == "output":
                self.finish(n)
                continue
            if n in self.skip:
                continue
            if n in self.units:
                self.env[n] = self.unit(n)
                continue
            if n.op == "call_function" and n in p.depends:
                try:
                    self.env[n] = self.op(n)
                except UnsupportedOpError as exc:
                    self.env[n] = Bad(str(exc))
        return self.g

    def input(self, n) -> Stream:
        v = self.base[n]
        if not v.is_floating_point():
            self.g.add("input", fl.Input(size=1, tokens=True, vocab=0))
            return Stream("input", 1, ("b", "t"))
        size = int(v.shape[-1]) if v.dim() == 3 else 1
        self.g.add("input", fl.Input(size=size))
        return Stream("input", size, ("b", "t", "c") if v.dim() == 3 else ("b", "t"))

    def val(self, a):
        if isinstance(a, torch.fx.Node):
            if a in self.env:
                v = self.env[a]
                if isinstance(v, Bad):
                    raise UnsupportedOpError(v.message)
                return v
            if a in self.p.depends:
                raise UnsupportedOpError(f"{self.where(a)}: value not understood")
            return self.base[a]
        return a

    def unit(self, n):
        kind, info = self.units[n]
        if kind == "ssm":
            sp, method, u_node, oaxes = info
            u = self.stream(u_node, f"SSM layer '{sp.path}' input")
            node = to_node(sp, method)
            if u.size != sp.H:
                raise UnsupportedOpError(f"SSM layer '{sp.path}' has H={sp.H} channels but receives {u.size}")
            src = self.materialise(u)
            return Stream(self.g.add(self.name(n, "s4d") if sp.path else "s4d", node, src), sp.H, oaxes)
        fit, src_node, path, axes_out, sdn = info
        u = self.stream(src_node, f"neuron '{path}' input")
        node = fit.node
        src = u.node
        if u.scale is not None:  # fold a positive per-channel input scale into the thresholds
            if np.any(u.scale <= 0):
                src = self.materialise(u)
            else:
                node = _rescale(node, u.scale)
        nm = f"{path}.neuron" if path.split(".")[-1] not in ("neuron",) else path
        nm = self._unique(nm)
        for entry in self.stripped:  # SDN entries point at the neuron's IR node
            if entry.get("_at") == n.name and entry["kind"] == "SDN":
                entry["_at"] = nm
        return Stream(self.g.add(nm, node, src), u.size, axes_out)

    def _unique(self, nm: str) -> str:
        k = self.count.get(nm, 0)
        self.count[nm] = k + 1
        return nm if k == 0 else f"{nm}_{k}"

    def stream(self, a, what: str) -> Stream:
        v = self.val(a)
        if not isinstance(v, Stream):
            raise UnsupportedOpError(f"{what}: expected a per-step sequence, got {type(v).__name__}")
        return v

    def materialise(self, s: Stream) -> str:
        if s.scale is None:
            return s.node
        w = np.diag(s.scale).astype(np.float32)
        return self.g.add(self._unique(f"{s.node}.scale"), fl.Affine(weight=w, bias=np.zeros(s.size, np.float32)),
                          s.node)

    def op(self, n):
        from neurocompile.frontend.dataflow_ops import apply_op

        return apply_op(self, n)

    def finish(self, n) -> None:
        outs = n.args[0]
        first = outs[0] if isinstance(outs, (list, tuple)) else outs
        v = self.val(first)
        if isinstance(v, Stream):
            self.g.outputs = [self.materialise(v)]
        elif isinstance(v, Pooled):
            self.g.outputs = [v.node]
        else:
            raise UnsupportedOpError(f"the model output is a {type(v).__name__}, not a sequence or pooled logits")
        self.g.inputs = ["input"]


def _literal(a) -> float | None:
    """A float constant of an op: a Python float, or a 0-d float tensor (how a traced TorchScript graph holds it)."""
    if isinstance(a, float):
        return a
    if isinstance(a, torch.Tensor) and a.dim() == 0 and a.is_floating_point():
        return float(a)
    return None


def _is_zeros(v) -> bool:
    return isinstance(v, torch.Tensor) and v.numel() > 0 and not bool(v.any())


#: neuron fields in input units (threshold, refractory magnitude): divided by a folded input scale
_INPUT_UNIT_FIELDS = ("vth", "rho")


def _rescale(node: fl.Node, k: np.ndarray) -> fl.Node:
    """Neuron fed x*k (k > 0 per channel) == neuron fed x with its input-unit fields (vth, rho) divided by k."""
    k = k.astype(np.float64)
    scaled = {f: (getattr(node, f) / k).astype(np.float32) for f in _INPUT_UNIT_FIELDS if hasattr(node, f)}
    return dataclasses.replace(node, **scaled)


def _layouts(shape: tuple[int, ...], T: int, H: int | None) -> list[tuple[str, ...]]:
    """Axis labellings of ``shape`` with one 't' (size T), one 'c' (size H), a leading 'b', others size 1."""
    out = []
    if H is None:
        return out
    n = len(shape)
    for ti in range(1, n):
        for ci in range(1, n):
            if ti == ci or shape[ti] != T or shape[ci] != H:
                continue
            if any(shape[i] != 1 for i in range(1, n) if i not in (ti, ci)):
                continue
            out.append(tuple("b" if i == 0 else "t" if i == ti else "c" if i == ci else "1" for i in range(n)))
    return out


def _to_btc(v: torch.Tensor, axes: tuple[str, ...]) -> torch.Tensor:
    order = [axes.index("b"), axes.index("t"), axes.index("c")]
    keep = v.permute(*order, *[i for i in range(v.dim()) if i not in order])
    return keep.reshape(keep.shape[0], keep.shape[1], keep.shape[2])


def _from_btc(x: torch.Tensor, axes: tuple[str, ...], shape: tuple[int, ...]) -> torch.Tensor:
    order = [axes.index("b"), axes.index("t"), axes.index("c")]
    rest = [i for i in range(len(shape)) if i not in order]
    full = x.reshape(*x.shape, *[1] * len(rest))
    inv = np.argsort(order + rest)
    return full.permute(*inv.tolist()).contiguous().reshape(shape)


def build_graph(ep: torch.export.ExportedProgram, name: str = "model") -> tuple[Graph, dict[str, Any]]:
    """Float IR of an exported program; returns the graph and ``{'proofs', 'stripped'}``."""
    prog = ep if isinstance(ep, Program) else Program(ep)
    if len(prog.user_inputs) != 1:
        raise UnsupportedOpError(f"the program takes {len(prog.user_inputs)} inputs; one sequence input is supported")
    inp = next(n for n in prog.nodes if n.op == "placeholder" and n.name == prog.user_inputs[0])
    val = inp.meta.get("val")
    shape = tuple(int(s) for s in val.shape)
    gen = torch.Generator().manual_seed(0)
    if val.dtype.is_floating_point:
        x = torch.randn(*shape, generator=gen).to(val.dtype)
    else:
        x = torch.randint(0, 2, shape, generator=gen).to(val.dtype)
    if len(shape) < 2 or shape[1] < 4:
        raise UnsupportedOpError(f"the program's input has shape {list(shape)}; expected [batch, time >= 4, features]")
    b = _Builder(prog, x, name)
    g = b.build()
    return g, {"proofs": b.proofs, "stripped": b.stripped}
