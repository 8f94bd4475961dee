"""NumPy reference interpreter of the float IR: the executable meaning of every node in ``ir/nodes.py``.

``interpret(graph, x)`` runs a float graph on a batch of sequences and returns its outputs (a classifier's logits
[B, n_classes]); with ``record=True`` it also returns every node's per-step output, which calibration and the
float-vs-integer comparisons use.

Evaluation order. The graph is a DAG and every recurrence lives inside a stateful node, so evaluating it step by
step (each step runs all nodes in :meth:`Graph.order`) gives exactly the same values as evaluating it node by node
over whole sequences in the same order, each stateful node looping over time internally. The interpreter does the
latter: it is vectorised over batch, channels and (for stateless nodes) time, and it makes the one non-causal node
explicit: a bidirectional S4D runs its reverse recurrence over the buffered input sequence (docs/ir.md).
Edges with ``delay`` d shift the source sequence by d steps (zeros first). A sequence-end node (MeanPool) emits one
value after the last step; it and its descendants produce sequences of length 1.

Chunks of time. ``interpret(graph, x_chunk, carry=c, final=False)`` runs the next steps of a sequence from the
state ``c`` (a :class:`Carry`: every stateful node's variables and each delayed edge's last d source steps) and
returns the state after them in ``Result.carry``; sequence-end nodes and their descendants run only on the
``final`` chunk. Every recurrence is the same per-step arithmetic as a whole run, so chunked outputs equal the
whole-run ones (up to the BLAS's row blocking and MeanPool's summation order, ~1e-16 relative); :func:`stream`
drives it. A bidirectional S4D reads the future and cannot run in chunks.

Precision. All arithmetic is float64 (complex128 for SSM states), whatever the dtype of the weights: the
interpreter is the reference the PyTorch model (float32) and the integer simulator are measured against, so its
own rounding error (~1e-16 relative) must be negligible next to theirs (~1e-7). Spike decisions therefore differ
from a float32 model only where the membrane is within float32 rounding of the threshold ("ties").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurocompile.errors import IRError
from neurocompile.ir import nodes as fl
from neurocompile.ir.graph import Graph
from neurocompile.ir.registry import Registry

__all__ = ["Carry", "Result", "interpret", "stream", "s4d_discretize", "gelu", "sigmoid"]

Array = np.ndarray

try:  # scipy ships with scikit-learn (a project dependency); fall back to math.erf elementwise
    from scipy.special import erf as _erf
except ImportError:  # pragma: no cover - scipy is normally present
    _erf = np.vectorize(math.erf, otypes=[np.float64])


@dataclass
class Carry:
    """What a sequence run in chunks of time carries from one chunk to the next.

    Attributes:
        steps: time steps run so far.
        nodes: node name -> its variables after the last step (``h``: SSM state [B, H, M] complex128; ``v``, ``s``,
            ``r``: neuron membrane, spike, refractory trace [B, H]; ``sum`` [B, 1, n] for a MeanPool).
        delays: (source, destination) -> the source's last d outputs [B, d, n] for an edge of delay d.
    """

    steps: int = 0
    nodes: dict[str, dict[str, Array]] = field(default_factory=dict)
    delays: dict[tuple[str, str], Array] = field(default_factory=dict)


@dataclass
class Result:
    """Outputs of :func:`interpret`.

    Attributes:
        outputs: output node name -> array; [B, n] for nodes evaluated at the sequence end (logits), else [B, T, n].
        trace: (``record=True``) node name -> per-step output [B, T, n] ([B, 1, n] for sequence-end nodes and their
            descendants); float64.
        state: (``record_state=True``) internal variables, keyed ``<node>`` for neurons (the membrane potential compared
            with the threshold, before reset, [B, T, H]) and S4D / ModeBank (complex states [B, T, H, M]).
        carry: (run with ``carry`` or ``final=False``) the state after the last step, for the next chunk.
    """

    outputs: dict[str, Array]
    trace: dict[str, Array] | None = None
    state: dict[str, Array] | None = field(default=None, repr=False)
    carry: Carry | None = field(default=None, repr=False)

    @property
    def logits(self) -> Array:
        """The first graph output."""
        return next(iter(self.outputs.values()))


# ---------------------------------------------------------------------------------------------------------- math
def sigmoid(x: Array) -> Array:
    """Logistic function, overflow-free (0.5 * (1 + tanh(x/2)))."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def gelu(x: Array) -> Array:
    """Exact GELU, x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) (PyTorch's default, approximate='none')."""
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _expm1_complex(z: Array) -> Array:
    """exp(z) - 1 without cancellation for small |z|."""
    re, im = z.real, z.imag
    return (np.expm1(re) * np.cos(im) - 2.0 * np.sin(0.5 * im) ** 2) + 1j * (np.exp(re) * np.sin(im))


def s4d_discretize(node: fl.S4D) -> tuple[Array, Array]:
    """Zero-order hold of an S4D node in complex128: ``(dA, dB)``, each [H, M].

    dA = exp(dt A), dB = (exp(dt A) - 1) / A * B with dt = exp(log_dt).
    """
    dt = np.exp(node.log_dt.astype(np.float64))[:, None]
    A = node.A_re.astype(np.float64) + 1j * node.A_im.astype(np.float64)
    dtA = dt * A
    return np.exp(dtA), _expm1_complex(dtA) / A * node.B.astype(np.complex128)


def _ssm_scan(dA: Array, dB: Array, u: Array, C: Array | None = None, reverse: bool = False,
              keep: bool = True, carry: dict[str, Array] | None = None) -> tuple[Array | None, Array | None]:
    """Run h_t = dA h_{t-1} + dB u_t, h_{-1} = 0, over u [B, T, H].

    Returns ``(states, y)``: the complex states [B, T, H, M] (when ``keep``) and, when ``C`` is given, the readout
    y_t = 2 Re(sum_m C_hm h_hm,t) [B, T, H] computed step by step (no state history needed).
    ``reverse``: the bidirectional backward half, g_{T-1} = 0, g_t = dA g_{t+1} + dB u_{t+1}.
    ``carry``: (forward only) starts from ``carry['h']`` [B, H, M] when present and leaves the last state there.
    """
    b, t_len, h = u.shape
    m = dA.shape[1]
    # float64 (re, im) pairs viewed as complex128: a ModeBank's output is this buffer, flattened, without a copy
    states = np.zeros((b, t_len, h, m, 2), np.float64).view(np.complex128)[..., 0] if keep else None
    y = np.zeros((b, t_len, h), np.float64) if C is not None else None
    c2 = 2.0 * C.astype(np.complex128) if C is not None else None
    s = np.zeros((b, h, m), np.complex128)
    if carry is not None and "h" in carry:
        s = carry["h"]
    steps = range(t_len) if not reverse else range(t_len - 2, -1, -1)
    for t in steps:
        s = dA * s + dB * u[:, t + 1 if reverse else t, :, None]
        if keep:
            states[:, t] = s
        if c2 is not None:
            y[:, t] = np.einsum("hm,bhm->bh", c2, s).real
    if carry is not None:
        carry["h"] = s
    return states, y


# ---------------------------------------------------------------------------------------------------------- nodes
Op = Callable[[str, Any, "dict[str, Array]", "dict[str, Array] | None", "dict[str, Array] | None"], Array]

#: float node class -> its rule ``(name, node, ins, state, carry) -> output [B, T, n]`` over a run of steps;
#: ``carry`` (None: a whole sequence from rest) holds a stateful node's variables in and leaves them out.
OPS: Registry[Op] = Registry("float-interpret", family="float",
                             exempt={"Input": "graph inputs are fed by the driver (_input_value), not computed"})


def _run_node(name: str, n: fl.Node, ins: dict[str, Array], state: dict[str, Array] | None,
              carry: dict[str, Array] | None) -> Array:
    op = OPS.get(n)
    if op is None:
        raise IRError(f"node '{name}': the float interpreter has no rule for {n.op}")
    return op(name, n, ins, state, carry)


@OPS.register(fl.Embedding)
def _embedding(name: str, n: fl.Embedding, ins: dict[str, Array], state: dict | None,
        carry: dict | None) -> Array:
    ids = np.asarray(ins["in"][..., 0])
    if ids.dtype.kind == "f":
        if not np.all(ids == np.round(ids)):
            raise IRError(f"node '{name}' (Embedding): token ids must be integers")
        ids = ids.astype(np.int64)
    vocab = n.weight.shape[0]
    if ids.size and (ids.min() < 0 or ids.max() >= vocab):
        bad = int(ids.min()) if ids.min() < 0 else int(ids.max())
        raise IRError(f"node '{name}' (Embedding): token id {bad} is outside [0, {vocab}); check the input data")
    return n.weight.astype(np.float64)[ids]


@OPS.register(fl.Affine)
def _affine(name: str, n: fl.Affine, ins: dict[str, Array], state: dict | None,
        carry: dict | None) -> Array:
    return ins["in"] @ n.weight.astype(np.float64).T + n.bias.astype(np.float64)


@OPS.register(fl.S4D)
def _s4d(name: str, n: fl.S4D, ins: dict[str, Array], state: dict | None,
        carry: dict | None) -> Array:
    x = ins["in"]
    dA, dB = s4d_discretize(n)
    if n.bidirectional and carry is not None:
        raise IRError(f"node '{name}' (bidirectional S4D) reads the whole sequence; it cannot run in chunks of time")
    states, y = _ssm_scan(dA, dB, x, C=n.C, keep=state is not None, carry=carry)
    y = y + n.D.astype(np.float64) * x
    if n.bidirectional:
        y = y + _ssm_scan(dA, dB, x, C=n.C2, reverse=True, keep=False)[1]
    if state is not None:
        state[name] = states
    return y


@OPS.register(fl.ModeBank)
def _modebank(name: str, n: fl.ModeBank, ins: dict[str, Array], state: dict | None,
        carry: dict | None) -> Array:
    x = ins["in"]
    states, _ = _ssm_scan(n.dA.astype(np.complex128), n.dB.astype(np.complex128), x, carry=carry)
    if state is not None:
        state[name] = states
    b, t_len = x.shape[:2]
    return states.base.reshape(b, t_len, -1)  # [B, T, H*M*2], index (h*M + m)*2 + {0: re, 1: im}


@OPS.register(fl.ModeReadout)
def _modereadout(name: str, n: fl.ModeReadout, ins: dict[str, Array], state: dict | None,
        carry: dict | None) -> Array:
    h, m = n.C.shape
    st = ins["state"].reshape(ins["state"].shape[0], ins["state"].shape[1], h, m, 2)
    c = n.C.astype(np.complex128)
    y = (2.0 * c.real * st[..., 0] - 2.0 * c.imag * st[..., 1]).sum(-1)
    return y + n.D.astype(np.float64) * ins["skip"]


@OPS.register(fl.Heaviside)
def _heaviside(name: str, n: fl.Heaviside, ins: dict[str, Array], state: dict | None,
        carry: dict | None) -> Array:
    x, vth = ins["in"], n.vth.astype(np.float64)
    return (x >= vth if n.compare == ">=" else x > vth).astype(np.float64)


@OPS.register(fl.GLU)
def _glu(name: str, n: fl.GLU, ins: dict[str, Array], state: dict | None,
        carry: dict | None) -> Array:
    x = ins["in"]
    return x[..., : n.size] * sigmoid(x[..., n.size:])


@OPS.register(fl.Ternarize)
def _ternarize(name: str, n: fl.Ternarize, ins: dict[str, Array], state: dict | None,
        carry: dict | None) -> Array:
    x = ins["in"]
    mag = np.abs(x)
    peak = mag.max(axis=-1, keepdims=True)
    return np.sign(x) * ((mag >= n.threshold * peak) & (peak > 0))


@OPS.register(fl.Mul)
def _mul(name: str, n: fl.Mul, ins: dict[str, Array], state: dict | None,
        carry: dict | None) -> Array:
    return ins["a"] * ins["b"]


_FNS: dict[str, Callable[[Array], Array]] = {"sigmoid": sigmoid, "gelu": gelu, "relu": lambda x: np.maximum(x, 0.0),
                                             "identity": lambda x: x}


@OPS.register(fl.Activation)
def _activation(name: str, n: fl.Activation, ins: dict[str, Array], state: dict | None,
        carry: dict | None) -> Array:
    fn = _FNS.get(n.fn)
    if fn is None:
        raise IRError(f"node '{name}' (Activation): unknown fn {n.fn!r}; supported: sigmoid, gelu, relu, identity")
    return fn(ins["in"])


@OPS.register(fl.Norm)
def _norm(name: str, n: fl.Norm, ins: dict[str, Array], state: dict | None,
        carry: dict | None) -> Array:
    x = ins["in"]
    w, b = n.weight.astype(np.float64), n.bias.astype(np.float64)
    if n.kind == "batch":
        return (x - n.mean.astype(np.float64)) / np.sqrt(n.var.astype(np.float64) + n.eps) * w + b
    if n.kind == "layer":
        mu = x.mean(axis=-1, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
        return (x - mu) / np.sqrt(var + n.eps) * w + b
    raise IRError(f"node '{name}' (Norm): unknown kind {n.kind!r}; supported: batch, layer")


@OPS.register(fl.Add)
def _add(name: str, n: fl.Add, ins: dict[str, Array], state: dict | None,
        carry: dict | None) -> Array:
    return ins["in"]


@OPS.register(fl.MeanPool)
def _meanpool(name: str, n: fl.MeanPool, ins: dict[str, Array], state: dict | None,
        carry: dict | None) -> Array:
    if carry is None:
        return ins["in"].mean(axis=1, keepdims=True)
    total = ins["in"].sum(axis=1, keepdims=True)  # running sum; carry["steps"]: steps through this chunk
    if "sum" in carry:
        total = carry["sum"] + total
    carry["sum"] = total
    return total / carry["steps"]


@OPS.register(fl.LIF)
def _lif(name: str, n: fl.LIF, ins: dict[str, Array], state: dict | None,
        carry: dict | None) -> Array:
    x = ins["in"]
    vth = n.vth.astype(np.float64)
    v = np.zeros(x.shape[::2], np.float64) if carry is None or "v" not in carry else carry["v"]  # [B, H]
    out = np.zeros_like(x)
    pre = np.zeros_like(x) if state is not None else None
    for t in range(x.shape[1]):
        vp = n.tau * v + x[:, t]
        s = vp >= vth if n.compare == ">=" else vp > vth
        v = np.where(s, 0.0 if n.reset == "zero" else vp - vth, vp)
        out[:, t] = s
        if pre is not None:
            pre[:, t] = vp
    if carry is not None:
        carry["v"] = v
    if state is not None:
        state[name] = pre
    return out


@OPS.register(fl.RefractoryLIF)
def _refractory(name: str, n: fl.RefractoryLIF, ins: dict[str, Array], state: dict | None,
        carry: dict | None) -> Array:
    x = ins["in"]
    vth, rho = n.vth.astype(np.float64), n.rho.astype(np.float64)
    v = np.zeros(x.shape[::2], np.float64)
    s = np.zeros_like(v)
    r = np.zeros_like(v)
    if carry is not None and "v" in carry:
        v, s, r = carry["v"], carry["s"], carry["r"]
    out = np.zeros_like(x)
    pre = np.zeros_like(x) if state is not None else None
    for t in range(x.shape[1]):
        v = n.tau * v + x[:, t] - vth * s - rho * r
        s = (v >= vth).astype(np.float64)
        r = n.lam * r + s
        out[:, t] = s
        if pre is not None:
            pre[:, t] = v
    if carry is not None:
        carry.update(v=v, s=s, r=r)
    if state is not None:
        state[name] = pre
    return out


# ---------------------------------------------------------------------------------------------------------- driver
def _input_value(name: str, n: fl.Input, x: Array) -> Array:
    a = np.asarray(x)
    if n.tokens:
        if a.ndim == 2:
            a = a[..., None]
        if a.ndim != 3 or a.shape[2] != 1:
            raise IRError(f"input '{name}' takes token ids [B, T] (or [B, T, 1]), got shape {list(np.shape(x))}")
        if a.dtype.kind not in "iu" and not np.all(a == np.round(a)):
            raise IRError(f"input '{name}' takes integer token ids, got dtype {a.dtype} with fractional values")
        return a.astype(np.int64)
    if a.ndim != 3 or a.shape[2] != n.size:
        raise IRError(f"input '{name}' takes [B, T, {n.size}] features, got shape {list(np.shape(x))}")
    if a.dtype.kind not in "biuf":
        raise IRError(f"input '{name}' takes real numbers, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise IRError(f"input '{name}' holds NaN/Inf values")
    return a


def _shift(a: Array, delay: int) -> Array:
    if delay <= 0:
        return a
    out = np.zeros_like(a)
    if delay < a.shape[1]:
        out[:, delay:] = a[:, : a.shape[1] - delay]
    return out


def _delayed(a: Array, delay: int, key: tuple[str, str], c_in: Carry | None, c_out: Carry | None) -> Array:
    """``a`` shifted by ``delay`` steps; in chunks, the previous chunk's last ``delay`` steps come first."""
    if delay <= 0:
        return a
    if c_out is None:
        return _shift(a, delay)
    prev = c_in.delays.get(key) if c_in is not None else None
    if prev is None:
        prev = np.zeros((a.shape[0], delay, *a.shape[2:]), a.dtype)
    full = np.concatenate([prev, a], axis=1)
    c_out.delays[key] = full[:, full.shape[1] - delay:]
    return full[:, : a.shape[1]]


def interpret(graph: Graph, x: Array | dict[str, Array], record: bool = False, record_state: bool = False,
              carry: Carry | None = None, final: bool = True) -> Result:
    """Run the float graph on ``x`` ([B, T, d] floats, or [B, T] token ids; a dict for several inputs).

    Returns a :class:`Result`; ``record=True`` also keeps every node's per-step output, ``record_state=True`` the
    neurons' membrane potentials and the S4D / ModeBank complex states (large: B*T*H*M complex128 per layer).
    ``carry`` / ``final``: run ``x`` as the next chunk of steps after the state ``carry`` (None: from rest);
    ``final=False`` leaves the sequence open (sequence-end nodes and their descendants do not run) and
    ``Result.carry`` holds the state for the next chunk. ``carry`` is not modified.
    Raises :class:`IRError` for integer nodes (run those with ``neurocompile.sim``) and malformed inputs.
    """
    if not graph.inputs:
        raise IRError(f"graph '{graph.name}' has no inputs")
    feeds = x if isinstance(x, dict) else {graph.inputs[0]: x}
    missing = [n for n in graph.inputs if n not in feeds]
    if missing:
        raise IRError(f"interpret: no value given for input(s) {missing} of graph '{graph.name}'")
    order = graph.order()
    vals: dict[str, Array] = {}
    state: dict[str, Array] | None = {} if record_state else None
    streaming = carry is not None or not final
    c_out = Carry(steps=carry.steps if carry is not None else 0) if streaming else None
    after = graph.sequence_end_nodes()  # run once, on the last chunk
    batch = None
    t_len = 0
    pending = {n: len(list(graph.g.successors(n))) for n in order}
    keep = set(graph.outputs)
    for name in order:
        n = graph.node(name)
        if n.FAMILY != "float":
            raise IRError(f"node '{name}' is an integer {n.op}: interpret() runs float graphs; "
                          f"simulate integer graphs with neurocompile.sim")
        if n.IS_INPUT:
            if name not in feeds:
                raise IRError(f"interpret: no value given for input node '{name}'")
            v = _input_value(name, n, feeds[name])  # type: ignore[arg-type]
            if batch is not None and v.shape[0] != batch:
                raise IRError(f"input '{name}' has batch {v.shape[0]}, other inputs have {batch}")
            batch, t_len = v.shape[0], v.shape[1]
            vals[name] = v
            continue
        if name in after and not final:
            continue
        ins: dict[str, Array] = {}
        for src in graph.preds(name):
            e = graph.edge(src, name)
            d = int(e.get("delay", 0))
            v = _shift(vals[src], d) if src in after else _delayed(vals[src], d, (src, name), carry, c_out)
            port = e["port"]
            if port in ins:
                if ins[port].shape != v.shape:
                    raise IRError(f"node '{name}' port '{port}': inputs of shapes {list(ins[port].shape)} and "
                                  f"{list(v.shape)} cannot be summed")
                ins[port] = ins[port] + v
            else:
                ins[port] = v
        missing_ports = [p for p in n.PORTS if p not in ins]
        if missing_ports:
            raise IRError(f"node '{name}' ({n.op}) has no input on port(s) {missing_ports}")
        nc: dict[str, Array] | None = None
        if c_out is not None and name not in after:
            nc = dict(carry.nodes.get(name, {})) if carry is not None else {}
            if n.SEQUENCE_END:
                nc["steps"] = np.float64(c_out.steps + t_len)
        out = _run_node(name, n, ins, state, nc)
        if nc:
            c_out.nodes[name] = nc  # type: ignore[union-attr]
        if final or not n.SEQUENCE_END:
            vals[name] = out
        if not record:  # free inputs nobody else needs (large sequences)
            for src in graph.preds(name):
                pending[src] -= 1
                if pending[src] == 0 and src not in keep:
                    vals.pop(src, None)
    if c_out is not None:
        c_out.steps += t_len
    seq_end = after | {n for n in graph.g.nodes if graph.node(n).SEQUENCE_END}
    outputs = {}
    for name in graph.outputs:
        if name not in vals:
            continue  # a sequence-end output of a chunk that is not the last
        v = vals[name]
        outputs[name] = v[:, 0] if name in seq_end else v
    return Result(outputs=outputs, trace=vals if record else None, state=state, carry=c_out)


def stream(graph: Graph, x: Array, steps: int, record: bool = False,
           record_state: bool = False) -> Iterator[tuple[int, Result]]:
    """Run ``x`` [B, T, ...] in chunks of ``steps`` time steps, yielding ``(first step, Result)`` per chunk; the
    last chunk's Result holds the sequence-end outputs (logits). Memory: one chunk's values, whatever T."""
    if steps < 1:
        raise IRError(f"stream: chunks of {steps} steps; need at least 1")
    t_len = int(np.shape(x)[1])
    carry: Carry | None = None
    for t0 in range(0, t_len, steps):
        last = t0 + steps >= t_len
        res = interpret(graph, x[:, t0:t0 + steps], record=record, record_state=record_state,
                        carry=carry if carry is not None else Carry(), final=last)
        carry = res.carry
        yield t0, res
