"""ATen op rules of the dataflow frontend: how each op between recognised units maps to IR nodes.

``apply_op(builder, node)`` returns the op's abstract value (:class:`~neurocompile.frontend.dataflow.Stream`,
``Pooled``, ``Half``, a list of them, or a constant tensor) or raises
:class:`~neurocompile.errors.UnsupportedOpError` naming the module path, the op and what was expected.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from neurocompile.errors import UnsupportedOpError
from neurocompile.frontend.dataflow import Half, Pooled, Stream, _layouts, _op
from neurocompile.ir import nodes as fl

__all__ = ["SUPPORTED_OPS", "apply_op"]

SUPPORTED_OPS = ("linear", "conv1d (kernel 1)", "embedding", "layer_norm", "batch_norm (eval)", "add", "mean (time)",
                 "glu", "chunk/split + sigmoid + mul (GLU)", "sigmoid", "gelu", "relu", "dropout (eval)",
                 "per-channel scale", "transpose/permute/view")
_F32 = np.float32
_HINT = {"lstm": "recurrent layers other than diagonal SSMs", "gru": "recurrent layers other than diagonal SSMs",
         "conv2d": "2-D convolutions", "scaled_dot_product_attention": "attention", "softmax": "attention/softmax",
         "bmm": "products of two activations (attention)", "matmul": "products of two activations (attention)",
         "_native_multi_head_attention": "attention", "baddbmm": "attention"}


def _np(t: Any) -> np.ndarray:
    return t.detach().cpu().double().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, np.float64)


def _unsupported(b, n, why: str) -> UnsupportedOpError:
    op = _op(n)
    what = _HINT.get(op)
    extra = f" ({what} cannot run on the target)" if what else ""
    return UnsupportedOpError(f"cannot compile {b.where(n)}{extra}: {why}; supported between SSM and neuron layers: "
                              f"{', '.join(SUPPORTED_OPS)}")


def _dim(d: int, rank: int) -> int:
    return d + rank if d < 0 else d


def apply_op(b, n) -> Any:
    op = _op(n)
    args = [b.val(a) for a in n.args]
    kw = {k: b.val(v) for k, v in n.kwargs.items()}
    g = b.g
    out_val = b.base.get(n)
    shape = tuple(out_val.shape) if isinstance(out_val, torch.Tensor) else None
    x = args[0] if args else None

    if op in ("dropout", "feature_dropout", "alpha_dropout") and isinstance(x, (Stream, Pooled)):
        train = args[2] if len(args) > 2 else kw.get("train", False)
        if train:
            raise _unsupported(b, n, "dropout in training mode; export the model in eval mode")
        b.stripped.append({"module": b.p.path(n), "kind": "Dropout", "reason": "identity at inference",
                           "_at": x.node})
        return x
    if isinstance(x, Pooled):
        if op in ("linear",) and isinstance(args[1], torch.Tensor):
            w = _np(args[1]).astype(_F32)
            bias = _np(args[2]).astype(_F32) if len(args) > 2 and args[2] is not None else np.zeros(w.shape[0], _F32)
            if w.shape[1] != x.size:
                raise _unsupported(b, n, f"weight {list(w.shape)} does not take {x.size} inputs")
            return Pooled(g.add(b.name(n, "linear"), fl.Affine(weight=w, bias=bias), x.node), int(w.shape[0]))
        if op in ("contiguous", "clone", "alias", "detach", "to", "_to_copy", "view", "reshape", "flatten"):
            return x
        raise _unsupported(b, n, "after the mean over time only linear layers are supported")
    if isinstance(x, list) and op == "getitem":
        return x[args[1]]
    if isinstance(x, Half):
        if op == "sigmoid" and not x.sigmoid:
            return Half(x.src, x.lo, x.hi, True)
        if op in ("contiguous", "clone", "alias"):
            return x
        if op == "mul" and isinstance(args[1], Half):
            a, s = (x, args[1]) if args[1].sigmoid else (args[1], x)
            H = a.hi - a.lo
            if a.src.node == s.src.node and not a.sigmoid and s.sigmoid and a.lo == 0 and s.lo == H and \
                    s.hi == 2 * H and a.src.size == 2 * H:
                src = b.materialise(a.src)
                return Stream(g.add(b.name(n, "glu"), fl.GLU(size=H), src), H, a.src.axes)
        raise _unsupported(b, n, "half of a channel split is only supported as a * sigmoid(b) (GLU)")
    if not isinstance(x, Stream):
        if op == "embedding" and len(args) > 1 and isinstance(args[1], Stream) and isinstance(args[0], torch.Tensor):
            w = _np(args[0]).astype(_F32)
            inp = g.node("input")
            inp.vocab = int(w.shape[0])
            return Stream(g.add(b.name(n, "embedding"), fl.Embedding(weight=w), args[1].node), int(w.shape[1]),
                          tuple(args[1].axes) + ("c",))
        if op in ("add", "mul") and len(args) > 1 and isinstance(args[1], (Stream, Half)):
            n_args = list(n.args)
            n.args = tuple([n_args[1], n_args[0]] + n_args[2:])
            try:
                return apply_op(b, n)
            finally:
                n.args = tuple(n_args)
        raise _unsupported(b, n, f"input is {type(x).__name__}, expected a per-step sequence")

    rank = len(x.axes)
    cax = x.axes.index("c") if "c" in x.axes else None
    tax = x.axes.index("t")
    if op in ("contiguous", "clone", "alias", "detach", "lift_fresh_copy"):
        return x
    if op in ("to", "_to_copy"):
        if out_val is not None and out_val.dtype not in (torch.float32, torch.float64, torch.int64):
            raise _unsupported(b, n, f"cast to {out_val.dtype}")
        return x
    if op in ("transpose", "t"):
        d0, d1 = (_dim(args[1], rank), _dim(args[2], rank)) if op == "transpose" else (0, 1)
        axes = list(x.axes)
        axes[d0], axes[d1] = axes[d1], axes[d0]
        return Stream(x.node, x.size, tuple(axes), x.scale)
    if op == "permute":
        dims = [_dim(d, rank) for d in args[1]]
        return Stream(x.node, x.size, tuple(x.axes[d] for d in dims), x.scale)
    if op in ("view", "reshape", "unsqueeze", "squeeze", "flatten", "expand"):
        cands = _layouts(shape, b.x.shape[1], x.size) if x.size > 1 else \
            [tuple("b" if i == 0 else "t" if s == b.x.shape[1] else "1" for i, s in enumerate(shape))]
        keep = [c for c in cands if (c.index("t") < c.index("c")) == (tax < (cax if cax is not None else 99))] \
            if x.size > 1 else cands
        if not keep:
            raise _unsupported(b, n, f"reshape of a [batch, time, {x.size}] sequence to {list(shape)}")
        return Stream(x.node, x.size, keep[0], x.scale)
    if op == "linear":
        if cax != rank - 1:
            raise _unsupported(b, n, "linear over an axis other than the channels")
        w = _np(args[1])
        bias = _np(args[2]) if len(args) > 2 and args[2] is not None else np.zeros(w.shape[0])
        if w.ndim != 2 or w.shape[1] != x.size:
            raise _unsupported(b, n, f"weight {list(w.shape)} does not take {x.size} inputs")
        if x.scale is not None:
            w = w * x.scale[None, :]
        return Stream(g.add(b.name(n, "linear"), fl.Affine(weight=w.astype(_F32), bias=bias.astype(_F32)), x.node),
                      int(w.shape[0]), x.axes)
    if op == "conv1d" or (op in ("_convolution", "convolution") and np.ndim(args[1]) == 3 and not args[6]):
        w = _np(args[1])
        bias = _np(args[2]) if len(args) > 2 and args[2] is not None else np.zeros(w.shape[0])
        if op == "conv1d":
            stride, pad, dil, groups = (list(args[3:7]) + [1, 0, 1, 1][len(args[3:7]):])
        else:  # TorchScript's generic convolution: (x, w, b, stride, padding, dilation, transposed, out_pad, groups)
            stride, pad, dil, groups = args[3], args[4], args[5], args[8]
        flat = lambda v: tuple(v) if isinstance(v, (list, tuple)) else (v,)
        if rank != 3 or cax != 1 or w.ndim != 3 or w.shape[2] != 1 or flat(stride) != (1,) or flat(pad) != (0,) \
                or flat(dil) != (1,) or groups != 1 or w.shape[1] != x.size:
            raise _unsupported(b, n, f"Conv1d with weight {list(w.shape)}, stride {stride}, padding {pad}, groups "
                                     f"{groups}; only kernel-1 convolutions over the channels map to the target")
        w = w[:, :, 0]
        if x.scale is not None:
            w = w * x.scale[None, :]
        return Stream(g.add(b.name(n, "conv1d"), fl.Affine(weight=w.astype(_F32), bias=bias.astype(_F32)), x.node),
                      int(w.shape[0]), x.axes)
    if op == "glu":
        d = _dim(args[1] if len(args) > 1 else kw.get("dim", -1), rank)
        if d != cax or x.size % 2:
            raise _unsupported(b, n, f"GLU over axis {d}, expected the channel axis {cax}")
        return Stream(g.add(b.name(n, "glu"), fl.GLU(size=x.size // 2), b.materialise(x)), x.size // 2, x.axes)
    if op in ("chunk", "split", "split_with_sizes", "unsafe_split"):
        d = _dim(args[2] if len(args) > 2 else kw.get("dim", 0), rank)
        if d != cax:
            raise _unsupported(b, n, "split along an axis other than the channels")
        if op == "chunk":
            k = args[1]
            sizes = [x.size // k] * k if x.size % k == 0 else None
        elif op == "split":
            sizes = [args[1]] * (x.size // args[1]) if isinstance(args[1], int) and x.size % args[1] == 0 \
                else list(args[1])
        else:
            sizes = list(args[1])
        if not sizes or len(sizes) != 2 or sizes[0] != sizes[1]:
            raise _unsupported(b, n, "only a split into two equal channel halves (GLU) is supported")
        return [Half(x, 0, sizes[0]), Half(x, sizes[0], 2 * sizes[0])]
    if op in ("sigmoid", "relu", "gelu"):
        if op == "gelu" and kw.get("approximate", args[1] if len(args) > 1 else "none") != "none":
            raise _unsupported(b, n, "tanh-approximated GELU; only the exact GELU is supported")
        return Stream(g.add(b.name(n, op), fl.Activation(fn=op, size=x.size), b.materialise(x)), x.size, x.axes)
    if op in ("mul", "div") and len(args) > 1 and not isinstance(args[1], (Stream, Half, list)):
        k = _np(args[1])
        vec = _channel_vector(k, x, shape)
        if vec is None:
            raise _unsupported(b, n, f"scaling by a constant of shape {list(k.shape)} (not per channel)")
        vec = 1.0 / vec if op == "div" else vec
        scale = vec if x.scale is None else x.scale * vec
        return Stream(x.node, x.size, x.axes, scale)
    if op == "add" and len(args) > 1 and isinstance(args[1], Stream):
        y = args[1]
        if y.size != x.size:
            raise _unsupported(b, n, f"adding sequences of {x.size} and {y.size} channels")
        alpha = kw.get("alpha", 1)
        if alpha != 1:
            raise _unsupported(b, n, f"add with alpha={alpha}")
        return Stream(g.add(b.name(n, "add"), fl.Add(size=x.size), [b.materialise(x), b.materialise(y)]), x.size,
                      x.axes)
    if op == "mean":
        dims = args[1] if len(args) > 1 else kw.get("dim")
        dims = [_dim(d, rank) for d in (dims if isinstance(dims, (list, tuple)) else [dims])]
        keep = args[2] if len(args) > 2 else kw.get("keepdim", False)
        if dims != [tax] or keep:
            raise _unsupported(b, n, "mean over an axis other than time")
        return Pooled(g.add(b.name(n, "mean") if b.p.path(n) else "pool", fl.MeanPool(size=x.size),
                            b.materialise(x)), x.size)
    if op == "layer_norm":
        if cax != rank - 1 or list(args[1]) != [x.size]:
            raise _unsupported(b, n, f"layer_norm over {list(args[1])}, expected the {x.size} channels")
        w = _np(args[2]) if len(args) > 2 and args[2] is not None else np.ones(x.size)
        bb = _np(args[3]) if len(args) > 3 and args[3] is not None else np.zeros(x.size)
        eps = float(args[4]) if len(args) > 4 else 1e-5
        node = fl.Norm(kind="layer", weight=w.astype(_F32), bias=bb.astype(_F32), mean=np.zeros(0, _F32),
                       var=np.zeros(0, _F32), eps=eps)
        return Stream(g.add(b.name(n, "layer_norm"), node, b.materialise(x)), x.size, x.axes)
    if op in ("_native_batch_norm_legit_no_training", "batch_norm"):
        if cax != 1:
            raise _unsupported(b, n, "batch norm over an axis other than the channels")
        w, bb, rm, rv = (args[1], args[2], args[3], args[4])
        if op == "batch_norm" and args[5]:
            raise _unsupported(b, n, "batch norm in training mode")
        eps = float(args[-1] if op == "_native_batch_norm_legit_no_training" else args[7])
        node = fl.Norm(kind="batch", weight=(_np(w) if w is not None else np.ones(x.size)).astype(_F32),
                       bias=(_np(bb) if bb is not None else np.zeros(x.size)).astype(_F32),
                       mean=_np(rm).astype(_F32), var=_np(rv).astype(_F32), eps=eps)
        return Stream(g.add(b.name(n, "batch_norm"), node, b.materialise(x)), x.size, x.axes)
    if op == "getitem" and isinstance(out_val, torch.Tensor) and args[1] == 0:
        return x  # first result of batch_norm
    raise _unsupported(b, n, "this op has no IR equivalent here")


def _channel_vector(k: np.ndarray, x: Stream, shape) -> np.ndarray | None:
    """A constant broadcast over batch and time as one value per channel ([H]), or None."""
    if k.size == 1:
        return np.full(x.size, float(k.reshape(())))
    cax = x.axes.index("c")
    rank = len(x.axes)
    kk = k.reshape((1,) * (rank - k.ndim) + k.shape)
    for i in range(rank):
        if i != cax and kk.shape[i] != 1:
            return None
    if kk.shape[cax] != x.size:
        return None
    return kk.reshape(-1).astype(np.float64)
