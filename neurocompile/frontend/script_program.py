"""Read a traced TorchScript module as the same op graph the dataflow frontend reads from torch.export.

The module's ``forward`` graph is walked with its submodule calls (``prim::CallMethod``) followed recursively, so
every ATen op keeps the path of the module that ran it (the ``nn_module_stack`` of torch.export). The walk runs the
ops on an example input at the same time: shape queries (``aten::size``, ``aten::Int``) become the constants a
trace specialised them to. The example's length is the one the trace was recorded with: the lengths suggested by
the graph's integer constants are tried until the module runs. Control flow (``prim::If``, ``prim::Loop``: a
scripted rather than traced module) is refused with the way in (save a ``.pt2``). A call of a scripted function
(``prim::CallFunction``, e.g. SpikingJelly's ``jit_eval_*`` neuron kernels) is read inlined: its ops get the path
of the module whose method called it (inlining also flattens that method's own submodule calls into its path).
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import fx

from neurocompile.errors import UnsupportedOpError
from neurocompile.frontend.dataflow import Program

__all__ = ["program_from_script"]

_STATIC = {"size", "Int", "Float", "ScalarImplicit", "NumToTensor", "dim", "len", "__getitem__"}


class _Mod:
    def __init__(self, module, path: str) -> None:
        self.module, self.path = module, path


class _Conv:
    def __init__(self, root) -> None:
        self.root = root
        self.g = fx.Graph()
        self.val: dict[fx.Node, Any] = {}
        self.stack: dict[fx.Node, list[str]] = {}
        self.kinds: dict[str, str] = {"": getattr(root, "original_name", "Module")}
        self.params: dict[str, torch.Tensor] = {}
        self.param_nodes: dict[str, fx.Node] = {}

    def param(self, key: str, t: torch.Tensor) -> fx.Node:
        if key not in self.param_nodes:
            n = self.g.placeholder("p_" + key.replace(".", "_"))
            self.param_nodes[key] = n
            self.params[n.name] = t.detach()
            self.val[n] = t.detach()
            self.stack[n] = [""]
        return self.param_nodes[key]

    def concrete(self, v):
        if isinstance(v, fx.Node):
            return self.val[v]
        if isinstance(v, (list, tuple)):
            return type(v)(self.concrete(a) for a in v)
        return v

    def walk(self, mod: _Mod, method: str, args: list, stack: list[str], depth: int = 0):
        if depth > 64:
            raise UnsupportedOpError("TorchScript module nesting deeper than 64 calls")
        graph = getattr(mod.module, method).graph
        if any(n.kind() == "prim::CallFunction" for n in graph.nodes()):
            # a scripted helper function (e.g. SpikingJelly's jit kernels) is read inlined, under this module's path
            graph = graph.copy()
            torch._C._jit_pass_inline(graph)
        env: dict = {}
        ins = list(graph.inputs())
        env[ins[0]] = mod
        for v, a in zip(ins[1:], args):
            env[v] = a
        for node in graph.nodes():
            kind = node.kind()
            outs = list(node.outputs())
            inputs = [env.get(i) for i in node.inputs()]
            if kind == "prim::Constant":
                try:
                    env[outs[0]] = outs[0].toIValue()
                except Exception:  # noqa: BLE001 - constants without a Python value (e.g. functions) are unused
                    env[outs[0]] = None
            elif kind == "prim::GetAttr":
                src, name = inputs[0], node.s("name")
                obj = getattr(src.module, name)
                path = f"{src.path}.{name}" if src.path else name
                if isinstance(obj, (torch.jit.ScriptModule, torch.nn.Module)):
                    self.kinds.setdefault(path, getattr(obj, "original_name", type(obj).__name__))
                    env[outs[0]] = _Mod(obj, path)
                elif isinstance(obj, torch.Tensor):
                    env[outs[0]] = self.param(path, obj)
                else:
                    env[outs[0]] = obj
            elif kind == "prim::CallMethod":
                target = inputs[0]
                res = self.walk(target, node.s("name"), inputs[1:], stack + [target.path], depth + 1)
                if len(outs) == 1:
                    env[outs[0]] = res
                else:
                    for o, r in zip(outs, res):
                        env[o] = r
            elif kind in ("prim::ListConstruct", "prim::TupleConstruct"):
                env[outs[0]] = list(inputs) if kind == "prim::ListConstruct" else tuple(inputs)
            elif kind in ("prim::TupleUnpack", "prim::ListUnpack"):
                seq = inputs[0]
                if seq is None:
                    raise UnsupportedOpError(f"module '{mod.path or '<root>'}' ({self.kinds.get(mod.path, '?')}), op "
                                             f"{kind}: a value the TorchScript reader cannot follow; save a .pt2")
                if isinstance(seq, fx.Node):
                    seq = [self.op(operator.getitem, "getitem", [seq, i], stack) for i in range(len(outs))]
                for o, r in zip(outs, seq):
                    env[o] = r
            elif kind == "prim::TupleIndex" or kind == "aten::__getitem__":
                seq, i = inputs
                env[outs[0]] = seq[i] if not isinstance(seq, fx.Node) else \
                    self.op(operator.getitem, "getitem", [seq, i], stack)
            elif kind.startswith("aten::") and kind[6:] in _STATIC:
                try:
                    env[outs[0]] = _static(kind[6:], self.concrete(inputs))
                except (TypeError, ValueError, RuntimeError, IndexError) as exc:
                    raise UnsupportedOpError(f"module '{mod.path or '<root>'}', op {kind}: shape arithmetic of the "
                                             f"TorchScript graph cannot be evaluated ({exc}); save a .pt2") from None
            elif kind.startswith("aten::"):
                fn, args, kwargs = _resolve(node, kind[6:], inputs)
                env[outs[0]] = self.op(fn, kind[6:], args, stack, kwargs)
            elif kind == "prim::NumToTensor":  # a traced shape number: a constant of this trace
                env[outs[0]] = torch.tensor(self.concrete(inputs[0]))
            elif kind in ("prim::If", "prim::Loop"):
                raise UnsupportedOpError(
                    f"module '{mod.path or '<root>'}' ({self.kinds.get(mod.path, '?')}), op {kind}: TorchScript "
                    f"control flow (a scripted module) is not read; save the model with torch.jit.trace or, "
                    f"better, torch.export (.pt2)")
            else:
                env[outs[0] if outs else None] = None
        rets = [env.get(v) for v in graph.outputs()]
        return rets[0] if len(rets) == 1 else rets

    def op(self, fn, name: str, inputs: list, stack: list[str], kwargs: dict | None = None):
        args, kwargs = tuple(inputs), dict(kwargs or {})
        n = self.g.call_function(fn, args, kwargs)
        try:
            self.val[n] = fn(*self.concrete(list(args)), **{k: self.concrete(v) for k, v in kwargs.items()})
        except Exception as exc:  # noqa: BLE001 - reported with the module path
            raise UnsupportedOpError(f"module '{stack[-1] or '<root>'}', op {name}: cannot be replayed from the "
                                     f"TorchScript graph ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})") from None
        self.stack[n] = list(stack)
        return n


def _resolve(node, name: str, inputs: list):
    """The exact ATen overload of a TorchScript node, with its keyword-only arguments as keywords."""
    try:
        fs = torch._C.parse_schema(node.schema())
        fn = getattr(getattr(torch.ops.aten, name), fs.overload_name or "default")
    except (RuntimeError, AttributeError):
        return getattr(torch.ops.aten, name), list(inputs), {}
    args, kwargs = [], {}
    for a, v in zip(fs.arguments, inputs):
        if a.kwarg_only:
            kwargs[a.name] = v
        else:
            args.append(v)
    return fn, args, kwargs


def _static(op: str, args: list) -> Any:
    """Shape arithmetic of a traced graph, evaluated on the example (the trace specialised it to these values)."""
    a = args[0]
    if op == "size":
        return list(a.shape) if len(args) == 1 else int(a.shape[args[1]])
    if op == "dim":
        return a.dim()
    if op == "len":
        return len(a)
    if op in ("Int", "Float", "ScalarImplicit"):
        v = a.item() if isinstance(a, torch.Tensor) else a
        return int(v) if op == "Int" else float(v) if op == "Float" else v
    return a  # NumToTensor: keep the Python number


class ScriptProgram(Program):
    """A :class:`~neurocompile.frontend.dataflow.Program` built from a traced TorchScript module."""

    def __init__(self, conv: _Conv, x: torch.Tensor) -> None:
        self.ep = None
        self.graph = conv.g
        self.nodes = list(conv.g.nodes)
        self.params = conv.params
        self.user_inputs = ["x"]
        self.tensors = {k: conv.params[n.name] for k, n in conv.param_nodes.items()}
        self.stack = {n: conv.stack.get(n, [""]) for n in self.nodes}
        self.kinds = conv.kinds
        self.users = {n: list(n.users) for n in self.nodes}
        self.depends = set()
        for n in self.nodes:
            if n.op == "placeholder" and n.name == "x" or any(a in self.depends for a in n.all_input_nodes):
                self.depends.add(n)
        self.example = x


def _example(module, d: int | None) -> torch.Tensor:
    if d is None:
        first = next((t for t in module.state_dict().values() if t.dim() == 2), None)
        d = int(first.shape[1]) if first is not None else 1
    ints: set[int] = set()
    for node in module.inlined_graph.nodes():
        if node.kind() == "prim::Constant":
            try:
                v = node.output().toIValue()
            except Exception:  # noqa: BLE001
                continue
            if isinstance(v, int) and 3 <= v <= 100000:
                ints.update((v, v + 1))  # an unrolled loop's last index is T - 1
            if isinstance(v, list) and all(isinstance(a, int) for a in v):
                ints.update(a for a in v if 4 <= a <= 100000)
    for T in sorted(ints, reverse=True):
        x = torch.zeros(2, T, d)
        try:
            with torch.no_grad():
                module(x)
        except Exception:  # noqa: BLE001 - wrong length: try the next one
            continue
        return x
    raise UnsupportedOpError("TorchScript module: cannot find the sequence length it was traced with (it runs on no "
                             "[2, T, d] input for the lengths its constants suggest); save a .pt2 instead")


def program_from_script(module, d_input: int | None = None) -> ScriptProgram:
    """The op graph of a traced TorchScript module, with module paths, ready for the dataflow frontend."""
    flow = next((n.kind() for n in module.inlined_graph.nodes() if n.kind() in ("prim::If", "prim::Loop")), None)
    if flow is not None:
        raise UnsupportedOpError(
            f"module '<root>' ({getattr(module, 'original_name', 'ScriptModule')}), op {flow}: TorchScript control "
            f"flow (a scripted module) is not read; save the model with torch.jit.trace or, better, torch.export "
            f"(.pt2)")
    x = _example(module, d_input)
    conv = _Conv(module)
    xn = conv.g.placeholder("x")
    conv.val[xn], conv.stack[xn] = torch.randn(x.shape, generator=torch.Generator().manual_seed(0)), [""]
    with torch.no_grad():
        out = conv.walk(_Mod(module, ""), "forward", [xn], [""])
    first = out[0] if isinstance(out, (list, tuple)) else out
    conv.g.output(first)
    conv.stack[list(conv.g.nodes)[-1]] = [""]
    xn.meta["val"] = x
    return ScriptProgram(conv, x)
