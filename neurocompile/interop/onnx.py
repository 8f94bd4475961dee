"""Export the float IR to ONNX as a streaming step model, and run it with onnxruntime.

>>> g = lower_graph(trace(load_model("examples/checkpoints/spikingssm_sdigits.pt")))
>>> export_onnx(g, "model.onnx")                 # one time step, explicit state in/out
>>> logits = run_onnx("model.onnx", x)           # x [B, T, d]: drives the step model over time

Form (docs/interop.md). The exported model is **one step of the recurrence** ("streaming form"): its inputs are
the graph inputs at step t (``[batch, d]`` floats, or ``[batch, 1]`` int64 token ids) plus one tensor per state
variable named ``state_in/<node>/<var>``; its outputs are the graph outputs at step t plus the new states,
``state_out/<node>/<var>``. Start every state at zero and feed each ``state_out`` back as the next step's
``state_in``. A sequence-end node (MeanPool) keeps a running sum and the shared step counter ``state_in/steps``;
it and everything downstream (the classifier head) are evaluated every step on the mean *so far*, so after the
last step the output equals the whole-sequence logits. This is the form a CPU deployment streams with.

The graph is built directly with ``onnx.helper`` (opset 17) from the node semantics of ``ir/nodes.py``, not via
``torch.onnx``. Complex SSM modes are real (re, im) pairs with the 2x2 decay-rotation, in the IR's interleaved
layout ``(h*M + m)*2 + {0: re, 1: im}``. The same graph always gives the same bytes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from neurocompile.errors import IRError, NeurocompileError, UnsupportedOpError
from neurocompile.ir import nodes as fl
from neurocompile.ir.graph import Graph
from neurocompile.ir.registry import Registry
from neurocompile.ir.traits import SPIKE_BINARY

__all__ = ["OPSET", "SUPPORTED_ONNX", "export_onnx", "onnx_model", "run_onnx"]

OPSET = 17
IR_VERSION = 8  # readable by onnxruntime >= 1.10
#: float IR ops the exporter knows (anything else, e.g. an integer Q-node, is refused)
SUPPORTED_ONNX = (
    "Input", "Embedding", "Affine", "S4D (unidirectional)", "ModeBank", "ModeReadout", "LIF", "Heaviside",
    "RefractoryLIF", "GLU", "Ternarize", "Mul", "Activation", "Norm", "Add", "MeanPool",
)
_META_KEY = "neurocompile.stream"


def _onnx():
    try:
        import onnx
        from onnx import helper
    except ImportError as e:  # pragma: no cover - onnx is a dependency of this extra
        raise NeurocompileError("ONNX export needs the 'onnx' package: pip install onnx") from e
    return onnx, helper


class _Builder:
    """Accumulates ONNX nodes, initializers and the graph's state and output bookkeeping."""

    def __init__(self, dtype: str) -> None:
        onnx, helper = _onnx()
        self.onnx, self.h = onnx, helper
        self.np_dtype = np.dtype(dtype)
        self.elem = onnx.TensorProto.DOUBLE if self.np_dtype == np.float64 else onnx.TensorProto.FLOAT
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.inputs: list[Any] = []
        self.outputs: list[Any] = []
        self.states: list[dict[str, Any]] = []  # {"in", "out", "shape"} (shape: "batch" + sizes)
        self._names: set[str] = set()
        self._n = 0

    def fresh(self, hint: str) -> str:
        self._n += 1
        return f"{hint}#{self._n}"

    def const(self, name: str, arr: Any, dtype: Any = None) -> str:
        if name in self._names:
            return name
        a = np.asarray(arr, dtype=dtype if dtype is not None else self.np_dtype)
        self.inits.append(self.onnx.numpy_helper.from_array(np.array(a, order="C"), name))
        self._names.add(name)
        return name

    def op(self, op_type: str, inputs: list[str], hint: str, out: str | None = None, **attrs: Any) -> str:
        out = out or self.fresh(hint)
        self.nodes.append(self.h.make_node(op_type, inputs, [out], name=self.fresh(f"{hint}/{op_type}"), **attrs))
        return out

    def state(self, node: str, var: str, size: int | None) -> tuple[str, str]:
        """Declare a state variable [batch, size] (``size`` None: a [1] counter). Returns (in name, out name)."""
        s_in, s_out = f"state_in/{node}/{var}" if node else "state_in/steps", \
            f"state_out/{node}/{var}" if node else "state_out/steps"
        shape: list[Any] = ["batch", int(size)] if size is not None else [1]
        self.inputs.append(self.h.make_tensor_value_info(s_in, self.elem, shape))
        self.outputs.append(self.h.make_tensor_value_info(s_out, self.elem, shape))
        self.states.append({"in": s_in, "out": s_out, "shape": shape})
        return s_in, s_out


def _unsupported(name: str, n: fl.Node, why: str = "") -> UnsupportedOpError:
    return UnsupportedOpError(
        f"node '{name}' ({n.op}) cannot be exported to ONNX{': ' + why if why else ''}; the ONNX exporter supports "
        f"the float IR ops {', '.join(SUPPORTED_ONNX)} (run lower_graph first; integer graphs are not exported)")


def _mode_bank(b: _Builder, name: str, u: str, dA: np.ndarray, dB: np.ndarray, out: str | None = None) -> str:
    """Emit the (re, im) recurrence; state layout [batch, H*M*2], interleaved like ModeBank's output."""
    dA = np.asarray(dA, np.complex128)
    dB = np.asarray(dB, np.complex128)
    h, m = dA.shape
    s_in, s_out = b.state(name, "modes", h * m * 2)
    ca = b.const(f"{name}.a_diag", np.stack([dA.real, dA.real], -1))  # [H, M, 2]
    cb = b.const(f"{name}.a_cross", np.stack([-dA.imag, dA.imag], -1))
    cu = b.const(f"{name}.b", np.stack([dB.real, dB.imag], -1))
    shp = b.const(f"{name}.shape4", [-1, h, m, 2], np.int64)
    flat = b.const(f"{name}.shape2", [-1, h * m * 2], np.int64)
    swap = b.const("swap_re_im", [1, 0], np.int64)
    uax = b.const("axes_2_3", [2, 3], np.int64)
    s4 = b.op("Reshape", [s_in, shp], name)
    sw = b.op("Gather", [s4, swap], name, axis=3)  # (im, re)
    rot = b.op("Add", [b.op("Mul", [s4, ca], name), b.op("Mul", [sw, cb], name)], name)
    drive = b.op("Mul", [b.op("Unsqueeze", [u, uax], name), cu], name)
    new4 = b.op("Add", [rot, drive], name)
    new = b.op("Reshape", [new4, flat], name, out=out)
    b.nodes.append(b.h.make_node("Identity", [new], [s_out], name=b.fresh(f"{name}/state")))
    return new


def _mode_readout(b: _Builder, name: str, state: str, skip: str, C: np.ndarray, D: np.ndarray,
                  out: str | None = None) -> str:
    C = np.asarray(C, np.complex128)
    h, m = C.shape
    coef = b.const(f"{name}.C2", np.stack([2.0 * C.real, -2.0 * C.imag], -1).reshape(h, m * 2))
    shp = b.const(f"{name}.shape3", [-1, h, m * 2], np.int64)
    ax = b.const("axes_2", [2], np.int64)
    st = b.op("Reshape", [state, shp], name)
    y = b.op("ReduceSum", [b.op("Mul", [st, coef], name), ax], name, keepdims=0)
    d = b.const(f"{name}.D", np.asarray(D, np.float64))
    return b.op("Add", [y, b.op("Mul", [d, skip], name)], name, out=out)


#: float node class -> ``(builder, name, node, port tensors, steps tensor) -> output tensor name``.
EXPORT: Registry[Callable[..., str]] = Registry(
    "onnx-export", family="float", exempt={"Input": "graph inputs become ONNX graph inputs in onnx_model"})


def _emit(b: _Builder, name: str, n: fl.Node, ins: dict[str, str], steps: str | None) -> str:
    """Emit node ``name``; its output tensor is named ``name``. Returns the output tensor name."""
    rule = EXPORT.get(n)
    if rule is None:
        raise _unsupported(name, n)
    return rule(b, name, n, ins, steps)


@EXPORT.register(fl.Embedding)
def _onnx_embedding(b: _Builder, name: str, n: fl.Embedding, ins: dict[str, str], steps: str | None) -> str:
    x = ins.get("in")
    f64 = np.float64
    w = b.const(f"{name}.weight", n.weight.astype(f64))
    g = b.op("Gather", [w, x], name, axis=0)  # [B, 1, H]
    return b.op("Reshape", [g, b.const(f"{name}.shape", [-1, n.weight.shape[1]], np.int64)], name, out=name)


@EXPORT.register(fl.Affine)
def _onnx_affine(b: _Builder, name: str, n: fl.Affine, ins: dict[str, str], steps: str | None) -> str:
    x = ins.get("in")
    f64 = np.float64
    w = b.const(f"{name}.weight_t", n.weight.astype(f64).T)
    return b.op("Add", [b.op("MatMul", [x, w], name), b.const(f"{name}.bias", n.bias.astype(f64))], name,
                out=name)


@EXPORT.register(fl.S4D)
def _onnx_s4d(b: _Builder, name: str, n: fl.S4D, ins: dict[str, str], steps: str | None) -> str:
    x = ins.get("in")
    if n.bidirectional:
        raise _unsupported(name, n, "a bidirectional S4D reads the sequence backwards, which a streaming step "
                                    "model cannot; retrain with bidirectional=False")
    from neurocompile.ir.interpret import s4d_discretize

    dA, dB = s4d_discretize(n)
    st = _mode_bank(b, name, x, dA, dB)
    return _mode_readout(b, name, st, x, n.C, n.D, out=name)


@EXPORT.register(fl.ModeBank)
def _onnx_modebank(b: _Builder, name: str, n: fl.ModeBank, ins: dict[str, str], steps: str | None) -> str:
    x = ins.get("in")
    return _mode_bank(b, name, x, n.dA, n.dB, out=name)


@EXPORT.register(fl.ModeReadout)
def _onnx_modereadout(b: _Builder, name: str, n: fl.ModeReadout, ins: dict[str, str], steps: str | None) -> str:
    return _mode_readout(b, name, ins["state"], ins["skip"], n.C, n.D, out=name)


@EXPORT.register(fl.LIF)
def _onnx_lif(b: _Builder, name: str, n: fl.LIF, ins: dict[str, str], steps: str | None) -> str:
    x = ins.get("in")
    f64 = np.float64
    if n.reset not in ("zero", "subtract") or n.compare not in (">=", ">"):
        raise _unsupported(name, n, f"reset {n.reset!r} / compare {n.compare!r} unknown")
    v_in, v_out = b.state(name, "v", n.out_size())
    vth = b.const(f"{name}.vth", n.vth.astype(f64))
    vp = b.op("Add", [b.op("Mul", [v_in, b.const(f"{name}.tau", float(n.tau))], name), x], name)
    s = b.op("GreaterOrEqual" if n.compare == ">=" else "Greater", [vp, vth], name)
    after = b.const("zero", 0.0) if n.reset == "zero" else b.op("Sub", [vp, vth], name)
    b.op("Where", [s, after, vp], name, out=v_out)
    return b.op("Cast", [s], name, out=name, to=b.elem)


@EXPORT.register(fl.RefractoryLIF)
def _onnx_refractorylif(b: _Builder, name: str, n: fl.RefractoryLIF, ins: dict[str, str], steps: str | None) -> str:
    x = ins.get("in")
    f64 = np.float64
    v_in, v_out = b.state(name, "v", n.out_size())
    s_in, s_out = b.state(name, "s", n.out_size())
    r_in, r_out = b.state(name, "r", n.out_size())
    vth = b.const(f"{name}.vth", n.vth.astype(f64))
    v = b.op("Add", [b.op("Mul", [v_in, b.const(f"{name}.tau", float(n.tau))], name), x], name)
    v = b.op("Sub", [v, b.op("Mul", [vth, s_in], name)], name)
    v = b.op("Sub", [v, b.op("Mul", [b.const(f"{name}.rho", n.rho.astype(f64)), r_in], name)], name, out=v_out)
    s = b.op("Cast", [b.op("GreaterOrEqual", [v, vth], name)], name, out=name, to=b.elem)
    b.op("Identity", [s], name, out=s_out)
    b.op("Add", [b.op("Mul", [r_in, b.const(f"{name}.lam", float(n.lam))], name), s], name, out=r_out)
    return s


@EXPORT.register(fl.Heaviside)
def _onnx_heaviside(b: _Builder, name: str, n: fl.Heaviside, ins: dict[str, str], steps: str | None) -> str:
    x = ins.get("in")
    f64 = np.float64
    vth = b.const(f"{name}.vth", n.vth.astype(f64))
    s = b.op("GreaterOrEqual" if n.compare == ">=" else "Greater", [x, vth], name)
    return b.op("Cast", [s], name, out=name, to=b.elem)


@EXPORT.register(fl.GLU)
def _onnx_glu(b: _Builder, name: str, n: fl.GLU, ins: dict[str, str], steps: str | None) -> str:
    x = ins.get("in")
    a = b.op("Slice", [x, b.const("zero_i", [0], np.int64), b.const(f"{name}.h", [n.size], np.int64),
                       b.const("axis_1", [1], np.int64)], name)
    g = b.op("Slice", [x, b.const(f"{name}.h", [n.size], np.int64), b.const(f"{name}.h2", [2 * n.size], np.int64),
                       b.const("axis_1", [1], np.int64)], name)
    return b.op("Mul", [a, b.op("Sigmoid", [g], name)], name, out=name)


@EXPORT.register(fl.Ternarize)
def _onnx_ternarize(b: _Builder, name: str, n: fl.Ternarize, ins: dict[str, str], steps: str | None) -> str:
    x = ins.get("in")
    mag = b.op("Abs", [x], name)
    peak = b.op("ReduceMax", [mag], name, axes=[1], keepdims=1)
    keep = b.op("And", [b.op("GreaterOrEqual", [mag, b.op("Mul", [peak, b.const(f"{name}.theta", n.threshold)],
                                                                 name)], name),
                        b.op("Greater", [peak, b.const("zero", 0.0)], name)], name)
    return b.op("Mul", [b.op("Sign", [x], name), b.op("Cast", [keep], name, to=b.elem)], name, out=name)


@EXPORT.register(fl.Mul)
def _onnx_mul(b: _Builder, name: str, n: fl.Mul, ins: dict[str, str], steps: str | None) -> str:
    return b.op("Mul", [ins["a"], ins["b"]], name, out=name)


@EXPORT.register(fl.Activation)
def _onnx_activation(b: _Builder, name: str, n: fl.Activation, ins: dict[str, str], steps: str | None) -> str:
    x = ins.get("in")
    if n.fn == "sigmoid":
        return b.op("Sigmoid", [x], name, out=name)
    if n.fn == "relu":
        return b.op("Relu", [x], name, out=name)
    if n.fn == "identity":
        return b.op("Identity", [x], name, out=name)
    if n.fn == "gelu":  # exact GELU: 0.5 x (1 + erf(x / sqrt 2))
        z = b.op("Div", [x, b.const("sqrt2", np.sqrt(2.0))], name)
        if b.elem != b.onnx.TensorProto.FLOAT:  # onnxruntime's CPU Erf is float32 only
            z = b.op("Cast", [b.op("Erf", [b.op("Cast", [z], name, to=b.onnx.TensorProto.FLOAT)], name)],
                     name, to=b.elem)
        else:
            z = b.op("Erf", [z], name)
        one_p = b.op("Add", [z, b.const("one", 1.0)], name)
        return b.op("Mul", [b.op("Mul", [x, b.const("half", 0.5)], name), one_p], name, out=name)
    raise _unsupported(name, n, f"activation {n.fn!r} (supported: sigmoid, gelu, relu, identity)")


@EXPORT.register(fl.Norm)
def _onnx_norm(b: _Builder, name: str, n: fl.Norm, ins: dict[str, str], steps: str | None) -> str:
    x = ins.get("in")
    f64 = np.float64
    w, bb = b.const(f"{name}.weight", n.weight.astype(f64)), b.const(f"{name}.bias", n.bias.astype(f64))
    if n.kind == "batch":
        den = np.sqrt(n.var.astype(f64) + n.eps)
        d = b.op("Sub", [x, b.const(f"{name}.mean", n.mean.astype(f64))], name)
        y = b.op("Div", [d, b.const(f"{name}.std", den)], name)
    elif n.kind == "layer":
        mu = b.op("ReduceMean", [x], name, axes=[1], keepdims=1)
        d = b.op("Sub", [x, mu], name)
        var = b.op("ReduceMean", [b.op("Mul", [d, d], name)], name, axes=[1], keepdims=1)
        std = b.op("Sqrt", [b.op("Add", [var, b.const(f"{name}.eps", n.eps)], name)], name)
        y = b.op("Div", [d, std], name)
    else:
        raise _unsupported(name, n, f"norm kind {n.kind!r} (supported: batch, layer)")
    return b.op("Add", [b.op("Mul", [y, w], name), bb], name, out=name)


@EXPORT.register(fl.Add)
def _onnx_add(b: _Builder, name: str, n: fl.Add, ins: dict[str, str], steps: str | None) -> str:
    x = ins.get("in")
    return b.op("Identity", [x], name, out=name)


@EXPORT.register(fl.MeanPool)
def _onnx_meanpool(b: _Builder, name: str, n: fl.MeanPool, ins: dict[str, str], steps: str | None) -> str:
    x = ins.get("in")
    s_in, s_out = b.state(name, "sum", n.out_size())
    total = b.op("Add", [s_in, x], name, out=s_out)
    return b.op("Div", [total, steps], name, out=name)


def onnx_model(graph: Graph, spikes: bool = False, dtype: str = "float32") -> Any:
    """Build the streaming step model of the float ``graph`` as an ``onnx.ModelProto`` (see the module docstring).

    ``spikes=True`` also outputs every spiking node's (LIF, RefractoryLIF, Heaviside) spikes at step t, under the
    node's name. ``dtype``: 'float32' (default, for deployment) or 'float64' (bit-for-bit closer to the float
    interpreter, which computes in float64). Raises :class:`UnsupportedOpError` naming the node for ops it cannot
    express (integer Q-nodes, bidirectional S4D).
    """
    if dtype not in ("float32", "float64"):
        raise NeurocompileError(f"export_onnx: dtype {dtype!r} is not supported; use 'float32' or 'float64'")
    if not graph.inputs or not graph.outputs:
        raise IRError(f"graph '{graph.name}' needs inputs and outputs to be exported to ONNX")
    b = _Builder(dtype)
    onnx, h = b.onnx, b.h
    order = graph.order()
    steps = None
    if any(graph.node(n).SEQUENCE_END for n in order):
        s_in, s_out = b.state("", "steps", None)
        steps = b.op("Add", [s_in, b.const("one", 1.0)], "steps", out=s_out)
    spiking: list[str] = []
    for name in order:
        n = graph.node(name)
        if fl.FLOAT_NODES.get(type(n).__name__) is not type(n):
            raise _unsupported(name, n)
        if n.IS_INPUT:
            if n.tokens:
                b.inputs.append(h.make_tensor_value_info(name, onnx.TensorProto.INT64, ["batch", 1]))
            else:
                b.inputs.append(h.make_tensor_value_info(name, b.elem, ["batch", int(n.size)]))
            continue
        ins: dict[str, str] = {}
        for src in graph.preds(name):
            e = graph.edge(src, name)
            v = src
            d = int(e.get("delay", 0))
            if d > 0:  # FIFO of the last d values of src: [batch, d*n]
                size = graph.node(src).out_size()
                q_in, q_out = b.state(name, f"delay<{src}>", d * size)
                q3 = b.op("Reshape", [q_in, b.const(f"shape_d{d}_{size}", [-1, d, size], np.int64)], name)
                v = b.op("Gather", [q3, b.const("zero_s", np.array(0, np.int64), np.int64)], name, axis=1)
                rest = b.op("Slice", [q3, b.const("one_i", [1], np.int64), b.const(f"d_{d}", [d], np.int64),
                                      b.const("axis_1", [1], np.int64)], name)
                new = b.op("Concat", [rest, b.op("Unsqueeze", [src, b.const("axis_1", [1], np.int64)], name)],
                           name, axis=1)
                b.op("Reshape", [new, b.const(f"shape_f{d * size}", [-1, d * size], np.int64)], name, out=q_out)
            port = e["port"]
            ins[port] = b.op("Add", [ins[port], v], name) if port in ins else v
        missing = [p for p in n.PORTS if p not in ins]
        if missing:
            raise IRError(f"node '{name}' ({n.op}) has no input on port(s) {missing}")
        _emit(b, name, n, ins, steps)
        if spikes and n.SPIKES == SPIKE_BINARY:
            spiking.append(name)
    seq_end = graph.sequence_end_nodes() | {n for n in order if graph.node(n).SEQUENCE_END}
    outs = []
    for o in list(graph.outputs) + [s for s in spiking if s not in graph.outputs]:
        if graph.node(o).IS_INPUT:
            raise UnsupportedOpError(f"graph output '{o}' is an Input node; nothing to export")
        outs.append(h.make_tensor_value_info(o, b.elem, ["batch", graph.node(o).out_size()]))
    meta = {
        "form": "step",
        "inputs": list(graph.inputs),
        "outputs": {o: ("sequence_end" if o in seq_end else "per_step") for o in graph.outputs},
        "spikes": spiking,
        "states": b.states,
        "dtype": dtype,
    }
    g = h.make_graph(b.nodes, f"{graph.name}_step", b.inputs, outs + b.outputs, initializer=b.inits,
                     doc_string=f"neurocompile streaming step model of '{graph.name}' (docs/interop.md)")
    model = h.make_model(g, opset_imports=[h.make_opsetid("", OPSET)], producer_name="neurocompile",
                         ir_version=IR_VERSION)
    h.set_model_props(model, {_META_KEY: json.dumps(meta, sort_keys=True)})
    onnx.checker.check_model(model)
    return model


def export_onnx(graph: Graph, path: str | os.PathLike, steps: int | None = None, spikes: bool = False,
                dtype: str = "float32") -> str:
    """Write the streaming step model of the float ``graph`` (lowered or not) to ``path``; returns the path.

    ``steps`` is accepted for API symmetry and must be None: the exported model is always one step (run any
    length with :func:`run_onnx`, or loop in your runtime). Same graph, same options -> identical bytes.
    """
    if steps is not None:
        raise NeurocompileError(
            f"export_onnx: steps={steps!r}: only the streaming step form is exported (steps=None); drive it "
            f"over any sequence length with run_onnx or your runtime's loop")
    model = onnx_model(graph, spikes=spikes, dtype=dtype)
    data = model.SerializeToString(deterministic=True)
    path = os.fspath(path)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return path


def _meta(sess: Any, path: str) -> dict[str, Any]:
    props = sess.get_modelmeta().custom_metadata_map
    if _META_KEY not in props:
        raise NeurocompileError(f"'{path}' is not a neurocompile streaming ONNX model (no '{_META_KEY}' metadata)")
    return json.loads(props[_META_KEY])


def run_onnx(path: str | os.PathLike, x: Any, return_all: bool = False) -> Any:
    """Run an exported step model over ``x`` ([B, T, d] floats or [B, T] token ids) with onnxruntime.

    Returns the first graph output after the last step (the logits, [B, n]); ``return_all=True`` returns a dict
    of every output: sequence-end outputs [B, n], per-step outputs and spikes [B, T, n].
    """
    try:
        import onnxruntime as ort
    except ImportError as e:  # pragma: no cover
        raise NeurocompileError("run_onnx needs onnxruntime: pip install onnxruntime") from e
    path = os.fspath(path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    meta = _meta(sess, path)
    dt = np.dtype(meta["dtype"])
    a = np.asarray(x.numpy() if hasattr(x, "numpy") else x)
    inp = meta["inputs"][0]
    if len(meta["inputs"]) != 1:
        raise NeurocompileError(f"run_onnx drives single-input models; '{path}' has inputs {meta['inputs']}")
    tokens = next(i for i in sess.get_inputs() if i.name == inp).type == "tensor(int64)"
    if tokens and a.ndim == 3:
        a = a[..., 0]
    if a.ndim != (2 if tokens else 3):
        raise NeurocompileError(f"run_onnx: input must be {'[B, T] token ids' if tokens else '[B, T, d]'}, "
                                f"got shape {list(a.shape)}")
    bsz, t_len = a.shape[:2]
    states = {s["in"]: np.zeros([bsz if d == "batch" else d for d in s["shape"]], dt) for s in meta["states"]}
    names = list(meta["outputs"]) + [s for s in meta["spikes"] if s not in meta["outputs"]]
    fetch = names + [s["out"] for s in meta["states"]]
    per_step: dict[str, list[np.ndarray]] = {o: [] for o in names}
    last: dict[str, np.ndarray] = {}
    for t in range(t_len):
        xt = a[:, t:t + 1].astype(np.int64) if tokens else a[:, t].astype(dt)
        res = sess.run(fetch, {inp: xt, **states})
        for o, v in zip(names, res):
            last[o] = v
            if meta["outputs"].get(o) != "sequence_end":
                per_step[o].append(v)
        states = {s["in"]: v for s, v in zip(meta["states"], res[len(names):])}
    out = {o: (last[o] if meta["outputs"].get(o) == "sequence_end" else np.stack(per_step[o], 1)) for o in names}
    if return_all:
        return out
    return out[names[0]]
