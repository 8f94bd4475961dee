"""Trace a loaded model into the float IR by recognising its module structure.

The recogniser walks the module hierarchy (:mod:`neurocompile.frontend.modtree`: eager, TorchScript or
torch.export, all seen the same way) and maps each known module to IR nodes:

=============================  ====================================================================================
module                         IR nodes (names are the module paths)
=============================  ====================================================================================
``SSMClassifier``              ``input`` (Input) -> encoder -> blocks -> ``pool`` (MeanPool) -> ``decoder`` (Affine)
``nn.Linear``                  Affine
``nn.Embedding``               Embedding (the input becomes token ids)
S4D parameter layout           S4D (``log_dt``; ``log_A_real`` (A_re = -exp), ``A_real`` (A_re, negative) or
                               ``inv_A_real`` (A_re = -softplus); ``A_imag``; ``B`` optional (ones); ``C`` complex
                               or real view [..., 2], [2, H, M] = bidirectional; ``D``), whatever the class name
``LIF``                        LIF (vth = exp(ln_vth), tau, reset 'zero', compare '>=')
``Heaviside``                  Heaviside (vth 0, compare '>')
``RefractoryLIF``              RefractoryLIF (vth = exp(ln_vth), rho = vth * exp(ln_rho), tau, lam)
``GLUMix``                     ``<mix>.conv`` Affine (2H) + ``<mix>.glu`` GLU
``GSU``                        ``<mix>.ter`` Ternarize(y), ``<mix>.gate_a`` Affine(W^T, b) on it,
                               ``<mix>.gate_b`` Affine(Ter(W)^T, c) on y, ``<mix>.mul`` Mul, ``<mix>.gelu`` gelu
``nn.LayerNorm`` / BatchNorm   Norm ('layer' / 'batch' with running statistics)
GELU / Sigmoid / ReLU / GLU    Activation / GLU
residual ``x + mix``           ``blocks.<i>.add`` (Add)
Dropout, SDN, PMBC             nothing: recorded in ``graph.meta['stripped']`` (training-only)
=============================  ====================================================================================

Supported model roots: ``SSMClassifier``, an ``nn.Sequential`` of per-step layers, or one S4D layer. Anything else
raises :class:`~neurocompile.errors.UnsupportedOpError` naming the IR node, the op, the module path and the
supported list. Hyper-parameters that a TorchScript / torch.export file does not store as attributes are taken from
the config (given or embedded) or read from the operators of the module's graph (``tau`` from ``v * tau``, ``eps``
from ``layer_norm``/``batch_norm``, the norm position from the execution order); when neither has them the trace
stops with an error asking for ``config=``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from neurocompile.errors import NeurocompileError, UnsupportedOpError
from neurocompile.frontend.load import LoadedModel, wrap_module
from neurocompile.frontend.modtree import (
    Evidence,
    ModuleTree,
    ModuleView,
    as_numpy,
    tree_from_export,
    tree_from_module,
    tree_from_script,
)
from neurocompile.frontend.recognise_ssm import probe_module as _probe_s4d
from neurocompile.ir import nodes as fl
from neurocompile.ir.graph import Graph

__all__ = ["trace", "SUPPORTED", "is_s4d_layout"]

#: What each position of a model may hold (used in error messages and docs).
SUPPORTED: dict[str, tuple[str, ...]] = {
    "model": ("SSMClassifier (neurocompile.models)", "nn.Sequential of per-step layers",
              "one S4D layer (state-spaces parameter layout)"),
    "encoder": ("Linear", "Embedding"),
    "norm": ("LayerNorm", "ChannelBatchNorm/BatchNorm1d (running statistics)", "Identity"),
    "ssm": ("S4D layout: log_dt, log_A_real|A_real|inv_A_real, A_imag, [B], C, D",),
    "neuron": ("LIF", "Heaviside", "RefractoryLIF"),
    "mix": ("GLUMix", "GSU", "nn.Sequential of layers"),
    "layer": ("Linear", "LayerNorm", "ChannelBatchNorm", "GELU", "Sigmoid", "ReLU", "GLU(dim=-1)", "Identity",
              "Dropout", "S4D layout", "LIF", "Heaviside", "RefractoryLIF"),
    "decoder": ("Linear",),
}
_F32 = np.float32
_C64 = np.complex64


def _unsupported(node: str, op: str, path: str, slot: str, why: str = "") -> UnsupportedOpError:
    extra = f" ({why})" if why else ""
    return UnsupportedOpError(
        f"cannot compile module '{path or '<root>'}' (op {op or '<unknown>'}) as IR node '{node}'{extra}; "
        f"supported {slot}: {', '.join(SUPPORTED[slot])}"
    )


def is_s4d_layout(view: ModuleView) -> bool:
    """True when a module's own tensors have the S4D (state-spaces) parameter layout."""
    t = view.tensors
    has_real = any(k in t for k in ("log_A_real", "A_real", "inv_A_real"))
    return has_real and all(k in t for k in ("log_dt", "A_imag", "C", "D"))


def _complex(a: torch.Tensor, path: str, name: str) -> np.ndarray:
    """A complex parameter stored as complex or as a real view with a trailing dimension of 2."""
    if a.is_complex():
        return as_numpy(a).astype(_C64)
    if a.dim() >= 1 and a.shape[-1] == 2:
        return as_numpy(torch.view_as_complex(a.detach().float().contiguous())).astype(_C64)
    raise UnsupportedOpError(f"S4D '{path}': parameter {name} of shape {list(a.shape)} is neither complex nor a real "
                             f"view [..., 2]; cannot read it as complex")


class _Tracer:
    def __init__(self, tree: ModuleTree, config: dict | None, name: str) -> None:
        self.tree = tree
        self.ev: Evidence | None = tree.evidence
        self.config = config
        self.g = Graph(name)
        self.stripped: list[dict[str, str]] = []
        self.trace_map: dict[str, str] = {}
        self.family: str | None = None  # derived from the neurons / mixing units of an SSMClassifier

    # ------------------------------------------------------------------ scalars
    def scalar(self, view: ModuleView, attr: str, cfg_key: str | None, from_graph: Callable[[], Any] | None,
               what: str) -> Any:
        """A hyper-parameter: module attribute, else config, else graph evidence, else a clear error."""
        if attr in view.attrs:
            return view.attrs[attr]
        if cfg_key is not None and self.config is not None and cfg_key in self.config:
            return self.config[cfg_key]
        if from_graph is not None and self.ev is not None:
            try:
                v = from_graph()
            except (IndexError, KeyError, ValueError):
                v = None
            if v is not None:
                return v
        raise UnsupportedOpError(
            f"module '{view.path}' ({view.kind}): {what} is not stored in this {self.tree.fmt} file and cannot be "
            f"read from its graph; pass config= (the model's ModelConfig dict or JSON; CLI: --config)")

    def tensor(self, view: ModuleView, name: str, node: str, shape: tuple[int, ...] | None = None) -> torch.Tensor:
        t = view.tensors.get(name)
        if t is None:
            raise UnsupportedOpError(f"module '{view.path}' ({view.kind}) for IR node '{node}' has no parameter "
                                     f"'{name}' (has: {', '.join(sorted(view.tensors)) or 'none'})")
        if shape is not None and tuple(t.shape) != tuple(shape):
            raise UnsupportedOpError(f"module '{view.path}' ({view.kind}): parameter '{name}' has shape "
                                     f"{list(t.shape)}, IR node '{node}' needs {list(shape)}")
        return t

    def strip(self, view: ModuleView, kind: str, reason: str) -> None:
        self.stripped.append({"module": view.path, "kind": kind, "reason": reason})

    # ------------------------------------------------------------------ leaf modules
    def affine_linear(self, view: ModuleView, name: str, src: str, n_in: int) -> str:
        w = self.tensor(view, "weight", name)
        if w.dim() != 2 or w.shape[1] != n_in:
            raise UnsupportedOpError(f"module '{view.path}' (Linear): weight shape {list(w.shape)} does not take "
                                     f"the {n_in} inputs that reach IR node '{name}'")
        b = view.tensors.get("bias")
        bias = as_numpy(b).astype(_F32) if b is not None else np.zeros(w.shape[0], _F32)
        return self.g.add(name, fl.Affine(weight=as_numpy(w).astype(_F32), bias=bias), src)

    def s4d(self, view: ModuleView, name: str, src: str, n_in: int) -> str:
        t = view.tensors
        path = view.path
        log_dt = as_numpy(t["log_dt"]).astype(np.float64).reshape(-1)
        a_im = as_numpy(t["A_imag"]).astype(np.float64)
        if "log_A_real" in t:
            a_re = -np.exp(as_numpy(t["log_A_real"]).astype(np.float64))
        elif "inv_A_real" in t:
            a_re = -np.logaddexp(0.0, as_numpy(t["inv_A_real"]).astype(np.float64))
        else:
            a_re = as_numpy(t["A_real"]).astype(np.float64)
            if np.any(a_re >= 0):
                raise UnsupportedOpError(
                    f"S4D '{path}' (IR node '{name}'): A_real has values >= 0 (max {a_re.max():.3g}); A_real is read "
                    f"as the real part of A, which must be negative (a stable SSM). Store log_A_real instead")
        while a_re.ndim > 2 and a_re.shape[0] == 1:
            a_re, a_im = a_re[0], a_im[0]
        if a_re.ndim != 2 or a_re.shape != a_im.shape:
            raise UnsupportedOpError(f"S4D '{path}' (IR node '{name}'): A real/imag shapes {list(a_re.shape)} / "
                                     f"{list(a_im.shape)} are not [H, N/2]")
        H, M = a_re.shape
        C = _complex(t["C"], path, "C")
        while C.ndim > 2 and C.shape[0] == 1:
            C = C[0]
        C2 = np.zeros((0, 0), _C64)
        if C.ndim == 3 and C.shape[0] == 2:
            C, C2 = C[0], C[1]
        if "B" in t:
            B = _complex(t["B"], path, "B")
            while B.ndim > 2 and B.shape[0] == 1:
                B = B[0]
        else:
            B = np.ones((H, M), _C64)
        D = as_numpy(t["D"]).astype(_F32).reshape(-1)
        for label, arr, want in (("C", C, (H, M)), ("B", B, (H, M)), ("log_dt", log_dt, (H,)), ("D", D, (H,))):
            if tuple(arr.shape) != want:
                raise UnsupportedOpError(f"S4D '{path}' (IR node '{name}'): {label} has shape {list(arr.shape)}, "
                                         f"expected {list(want)} for H={H}, N/2={M}")
        if C2.size and C2.shape != (H, M):
            raise UnsupportedOpError(f"S4D '{path}': reverse C has shape {list(C2.shape)}, expected {[H, M]}")
        if H != n_in:
            raise UnsupportedOpError(f"S4D '{path}' (IR node '{name}') has H={H} channels but receives {n_in}")
        node = fl.S4D(log_dt=log_dt.astype(_F32), A_re=a_re.astype(_F32), A_im=a_im.astype(_F32),
                      B=B.astype(_C64), C=C.astype(_C64), D=D, C2=C2.astype(_C64))
        if view.module is not None and not view.ours:
            _probe_s4d(view, node, name)
        return self.g.add(name, node, src)

    def norm(self, view: ModuleView, name: str, src: str, n_in: int) -> str | None:
        kind = view.kind
        if kind == "Identity":
            return None
        ev = self.ev
        if kind == "LayerNorm":
            shape = view.attrs.get("normalized_shape")
            if shape is not None and tuple(shape) != (n_in,):
                raise _unsupported(name, kind, view.path, "norm", f"normalized_shape {list(shape)} is not [{n_in}]")
            eps = self.scalar(view, "eps", None, lambda: ev.literals(view.path, "layer_norm")[-1], "LayerNorm eps")
            w = view.tensors.get("weight")
            b = view.tensors.get("bias")
            node = fl.Norm(kind="layer",
                           weight=as_numpy(w).astype(_F32) if w is not None else np.ones(n_in, _F32),
                           bias=as_numpy(b).astype(_F32) if b is not None else np.zeros(n_in, _F32),
                           mean=np.zeros(0, _F32), var=np.zeros(0, _F32), eps=float(eps))
            return self.g.add(name, node, src)
        if kind in ("ChannelBatchNorm", "BatchNorm1d"):
            if "running_mean" not in view.tensors or "running_var" not in view.tensors:
                raise _unsupported(name, kind, view.path, "norm", "no running statistics (track_running_stats=False)")

            def bn_eps() -> float:
                lits = ev.literals(view.path, "_native_batch_norm_legit_no_training") or \
                    ev.literals(view.path, "batch_norm")
                return lits[-1]

            eps = self.scalar(view, "eps", None, bn_eps, "BatchNorm eps")
            w = view.tensors.get("weight")
            b = view.tensors.get("bias")
            node = fl.Norm(kind="batch",
                           weight=as_numpy(w).astype(_F32) if w is not None else np.ones(n_in, _F32),
                           bias=as_numpy(b).astype(_F32) if b is not None else np.zeros(n_in, _F32),
                           mean=as_numpy(view.tensors["running_mean"]).astype(_F32),
                           var=as_numpy(view.tensors["running_var"]).astype(_F32), eps=float(eps))
            return self.g.add(name, node, src)
        raise _unsupported(name, kind, view.path, "norm")

    def neuron(self, view: ModuleView, name: str, src: str, n_in: int) -> str:
        kind = view.kind
        ev = self.ev
        if not view.ours or kind not in ("LIF", "Heaviside", "RefractoryLIF"):
            raise _unsupported(name, kind, view.path, "neuron")
        if kind == "Heaviside":
            return self.g.add(name, fl.Heaviside(vth=np.zeros(n_in, _F32), compare=">"), src)
        ln_vth = self.tensor(view, "ln_vth", name, (n_in,))
        vth = torch.exp(ln_vth.float())
        mode = self.scalar(view, "mode", "neuron_mode", lambda: "exact", "training mode")
        if kind == "LIF":
            tau = self.scalar(view, "tau", "tau", lambda: ev.literals(view.path, "mul")[0], "LIF tau")
            if mode == "sdn":
                self.strip(view, "SDN", "training-time surrogate dynamic network; compiled as the exact LIF")
            return self.g.add(name, fl.LIF(tau=float(tau), vth=as_numpy(vth).astype(_F32), reset="zero",
                                           compare=">="), src)
        tau = self.scalar(view, "tau", "tau", lambda: ev.literals(view.path, "mul")[0], "RefractoryLIF tau")
        lam = self.scalar(view, "lam", "refractory_decay", lambda: ev.literals(view.path, "mul")[1],
                          "RefractoryLIF lambda")
        rho = vth * torch.exp(self.tensor(view, "ln_rho", name, (n_in,)).float())
        if mode == "pmbc":
            self.strip(view, "PMBC", "training-time parallel max-min boundary compression; compiled as the exact "
                                     "refractory neuron")
        return self.g.add(name, fl.RefractoryLIF(tau=float(tau), lam=float(lam), vth=as_numpy(vth).astype(_F32),
                                                 rho=as_numpy(rho).astype(_F32)), src)

    def gsu(self, view: ModuleView, name: str, src: str, n_in: int) -> str:
        ev = self.ev
        W = self.tensor(view, "W", name, (n_in, n_in)).float()
        b = self.tensor(view, "b", name, (n_in,))
        c = self.tensor(view, "c", name, (n_in,))
        thr = float(self.scalar(view, "ter_threshold", "gsu_ter_threshold",
                                lambda: ev.literals(view.path, "mul")[0], "GSU ternarisation threshold"))
        mag = W.abs()
        ter_w = torch.sign(W) * (mag >= thr * mag.amax()).to(W.dtype)  # as the model's ternarize_ste(W, thr, None)
        g = self.g
        ter = g.add(f"{name}.ter", fl.Ternarize(size=n_in, threshold=thr), src)
        a = g.add(f"{name}.gate_a", fl.Affine(weight=as_numpy(W.t()).astype(_F32), bias=as_numpy(b).astype(_F32)), ter)
        bb = g.add(f"{name}.gate_b", fl.Affine(weight=as_numpy(ter_w.t()).astype(_F32), bias=as_numpy(c).astype(_F32)),
                   src)
        mul = g.add(f"{name}.mul", fl.Mul(size=n_in), {"a": [a], "b": [bb]})
        return g.add(f"{name}.gelu", fl.Activation(fn="gelu", size=n_in), mul)

    def glumix(self, view: ModuleView, name: str, src: str, n_in: int) -> str:
        conv = view.child("conv")
        if conv is None or conv.kind != "Conv1d":
            raise _unsupported(f"{name}.conv", conv.kind if conv else "", f"{view.path}.conv", "mix",
                               "GLUMix without its Conv1d")
        w = self.tensor(conv, "weight", f"{name}.conv")
        if w.dim() != 3 or w.shape[2] != 1 or w.shape[1] != n_in or w.shape[0] != 2 * n_in:
            raise _unsupported(f"{name}.conv", "Conv1d", conv.path, "mix",
                               f"weight {list(w.shape)} is not a kernel-1 convolution {n_in} -> {2 * n_in}")
        for attr, want in (("padding", (0,)), ("stride", (1,)), ("groups", 1)):
            if attr in conv.attrs and conv.attrs[attr] not in (want, list(want) if isinstance(want, tuple) else want):
                raise _unsupported(f"{name}.conv", "Conv1d", conv.path, "mix", f"{attr}={conv.attrs[attr]}")
        bias = conv.tensors.get("bias")
        aff = fl.Affine(weight=as_numpy(w[:, :, 0]).astype(_F32),
                        bias=as_numpy(bias).astype(_F32) if bias is not None else np.zeros(2 * n_in, _F32))
        c = self.g.add(f"{name}.conv", aff, src)
        return self.g.add(f"{name}.glu", fl.GLU(size=n_in), c)

    def activation(self, view: ModuleView, name: str, src: str, n_in: int) -> str:
        kind = view.kind
        if kind == "GELU":
            approx = view.attrs.get("approximate")
            if approx is None and self.ev is not None:
                lits = self.ev.string_literals(view.path, "gelu")
                approx = lits[0] if lits else "none"
            if approx not in (None, "none"):
                raise _unsupported(name, f"GELU(approximate={approx!r})", view.path, "layer",
                                   "only the exact (erf) GELU is supported")
            return self.g.add(name, fl.Activation(fn="gelu", size=n_in), src)
        fn = {"Sigmoid": "sigmoid", "ReLU": "relu"}[kind]
        return self.g.add(name, fl.Activation(fn=fn, size=n_in), src)

    # ------------------------------------------------------------------ chains
    def layer(self, view: ModuleView, name: str, src: str, n_in: int) -> tuple[str, int]:
        """One per-step layer of a Sequential: (output node, output size)."""
        kind = view.kind
        std = view.torch_nn or view.module is None or not view.qualname
        if is_s4d_layout(view):
            out = self.s4d(view, name, src, n_in)
            return out, n_in
        if kind == "Linear" and std:
            out = self.affine_linear(view, name, src, n_in)
            return out, self.g.node(out).out_size()
        if kind in ("Identity",) and std:
            return src, n_in
        if kind == "Dropout" and std:
            self.strip(view, "Dropout", "identity at inference")
            return src, n_in
        if kind in ("GELU", "Sigmoid", "ReLU") and std:
            return self.activation(view, name, src, n_in), n_in
        if kind == "GLU" and std:
            dim = view.attrs.get("dim", -1)
            if dim not in (-1,) or n_in % 2:
                raise _unsupported(name, "GLU", view.path, "layer", f"dim={dim} on {n_in} channels")
            return self.g.add(name, fl.GLU(size=n_in // 2), src), n_in // 2
        if kind == "LayerNorm" or (kind == "ChannelBatchNorm" and view.ours):
            out = self.norm(view, name, src, n_in)
            return (out if out else src), n_in
        if view.ours and kind in ("LIF", "Heaviside", "RefractoryLIF"):
            return self.neuron(view, name, src, n_in), n_in
        if view.ours and kind == "GSU":
            return self.gsu(view, name, src, n_in), n_in
        if view.ours and kind == "GLUMix":
            return self.glumix(view, name, src, n_in), n_in
        if kind == "Sequential" and (std or view.module is None):
            return self.chain(view, name, src, n_in)
        raise _unsupported(name, kind, view.path, "layer")

    def chain(self, view: ModuleView, name: str, src: str, n_in: int) -> tuple[str, int]:
        out, n = src, n_in
        for child_name, child in view.children.items():
            out, n = self.layer(child, f"{name}.{child_name}" if name else child_name, out, n)
        return out, n

    # ------------------------------------------------------------------ roots
    def input_for(self, first: ModuleView) -> tuple[str, int]:
        if first.kind == "Embedding":
            w = self.tensor(first, "weight", "encoder")
            self.g.add("input", fl.Input(size=1, tokens=True, vocab=int(w.shape[0])))
            return "input", 1
        if first.kind == "Linear":
            w = self.tensor(first, "weight", first.path or "input")
            size = int(w.shape[1])
        elif is_s4d_layout(first):
            size = int(first.tensors["D"].reshape(-1).shape[0])
        else:
            raise _unsupported(first.path or "input", first.kind, first.path, "encoder",
                               "the first layer must fix the input size")
        self.g.add("input", fl.Input(size=size))
        return "input", size

    def classifier(self, root: ModuleView) -> None:
        g = self.g
        enc = root.child("encoder")
        blocks = root.child("blocks")
        dec = root.child("decoder")
        if enc is None or dec is None:
            raise _unsupported("encoder" if enc is None else "decoder", root.kind, "", "model",
                               "SSMClassifier without its encoder/decoder")
        src, n = self.input_for(enc)
        if enc.kind == "Embedding":
            w = self.tensor(enc, "weight", "encoder")
            x = g.add("encoder", fl.Embedding(weight=as_numpy(w).astype(_F32)), src)
            n = int(w.shape[1])
        elif enc.kind == "Linear":
            x = self.affine_linear(enc, "encoder", src, n)
            n = g.node(x).out_size()
        else:
            raise _unsupported("encoder", enc.kind, enc.path, "encoder")
        self.trace_map["encoder"] = x
        block_views = sorted(((k, v) for k, v in (blocks.children.items() if blocks else [])),
                             key=lambda kv: int(kv[0]) if kv[0].isdigit() else 1 << 30)
        family = None
        for i, (key, bv) in enumerate(block_views):
            if key != str(i):
                raise _unsupported(f"blocks.{key}", bv.kind, bv.path, "model", "blocks must be numbered 0..n-1")
            x, fam = self.block(bv, i, x, n)
            family = family or fam
        pool = g.add("pool", fl.MeanPool(size=n), x)
        if dec.kind != "Linear":
            raise _unsupported("decoder", dec.kind, dec.path, "decoder")
        out = self.affine_linear(dec, "decoder", pool, n)
        g.inputs, g.outputs = ["input"], [out]
        self.family = family

    def block(self, bv: ModuleView, i: int, x: str, n: int) -> tuple[str, str]:
        g = self.g
        base = f"blocks.{i}"
        if not (bv.ours and bv.kind == "SSMBlock"):
            raise _unsupported(base, bv.kind, bv.path, "model", "blocks must be SSMBlock modules")
        norm_v = bv.child("norm")
        s4d_v = bv.child("s4d")
        neuron_v = bv.child("neuron")
        mix_v = bv.child("mix")
        drop_v = bv.child("dropout")
        if s4d_v is None or not is_s4d_layout(s4d_v):
            raise _unsupported(f"{base}.s4d", s4d_v.kind if s4d_v else "", f"{base}.s4d", "ssm",
                               "missing" if s4d_v is None else "parameters do not have the S4D layout")
        if mix_v is None:
            raise _unsupported(f"{base}.mix", "", f"{base}.mix", "mix", "the block has no mixing unit")
        has_norm = norm_v is not None and norm_v.kind != "Identity"
        position = "pre"
        if has_norm:
            ev = self.ev

            def order() -> str:
                a, b = ev.first_seen.get(norm_v.path), ev.first_seen.get(s4d_v.path)
                if a is None or b is None:
                    raise KeyError(norm_v.path)
                return "pre" if a < b else "post"

            position = self.scalar(bv, "norm_position", "norm_position", order, "norm position (pre/post)")
            if position not in ("pre", "post"):
                raise _unsupported(f"{base}.norm", norm_v.kind, norm_v.path, "norm", f"norm_position={position!r}")
        z = x
        if has_norm and position == "pre":
            z = self.norm(norm_v, f"{base}.norm", x, n) or x
        y = self.s4d(s4d_v, f"{base}.s4d", z, n)
        if drop_v is not None:
            if drop_v.kind != "Dropout":
                raise _unsupported(f"{base}.dropout", drop_v.kind, drop_v.path, "layer")
            self.strip(drop_v, "Dropout", "identity at inference")
        if neuron_v is not None:
            s = self.neuron(neuron_v, f"{base}.neuron", y, n)
            family = {"LIF": "spikingssm", "Heaviside": "binary_s4d", "RefractoryLIF": "spike_ssm"}[neuron_v.kind]
            spikes = s
        else:
            if not (mix_v.ours and mix_v.kind == "GSU"):
                raise _unsupported(f"{base}.neuron", "", f"{base}.neuron", "neuron",
                                   "a block without a neuron needs a GSU mix")
            s = y
            family = "gsu"
            spikes = f"{base}.mix.ter"
        if mix_v.ours and mix_v.kind == "GSU":
            m = self.gsu(mix_v, f"{base}.mix", s, n)
        elif mix_v.ours and mix_v.kind == "GLUMix":
            m = self.glumix(mix_v, f"{base}.mix", s, n)
        elif mix_v.kind == "Sequential":
            m, m_n = self.chain(mix_v, f"{base}.mix", s, n)
            if m_n != n:
                raise _unsupported(f"{base}.mix", "Sequential", mix_v.path, "mix", f"outputs {m_n} channels, not {n}")
        else:
            raise _unsupported(f"{base}.mix", mix_v.kind, mix_v.path, "mix")
        out = g.add(f"{base}.add", fl.Add(size=n), [x, m])
        if has_norm and position == "post":
            out = self.norm(norm_v, f"{base}.norm", out, n) or out
        self.trace_map[f"block{i}.s4d"] = y
        self.trace_map[f"block{i}.spikes"] = spikes
        self.trace_map[f"block{i}.out"] = out
        return out, family

    def sequential(self, root: ModuleView) -> None:
        if not root.children:
            raise UnsupportedOpError("the model is an empty nn.Sequential: nothing to compile")
        first = next(iter(root.children.values()))
        src, n = self.input_for(first)
        if first.kind == "Embedding":
            w = self.tensor(first, "weight", first.path)
            src = self.g.add(first.path, fl.Embedding(weight=as_numpy(w).astype(_F32)), src)
            n = int(w.shape[1])
            rest = list(root.children.items())[1:]
        else:
            rest = list(root.children.items())
        for child_name, child in rest:
            src, n = self.layer(child, child.path or child_name, src, n)
        if src == "input":
            raise UnsupportedOpError("the nn.Sequential model computes nothing (only Identity/Dropout layers)")
        self.g.inputs, self.g.outputs = ["input"], [src]
        self.family = None

    def single_s4d(self, root: ModuleView) -> None:
        src, n = self.input_for(root)
        out = self.s4d(root, "s4d", src, n)
        self.g.inputs, self.g.outputs = ["input"], [out]
        self.family = None

    def run(self) -> Graph:
        root = self.tree.root
        if root.ours and root.kind == "SSMClassifier":
            self.classifier(root)
        elif is_s4d_layout(root):
            self.single_s4d(root)
        elif root.kind == "Sequential" and (root.torch_nn or root.module is None):
            self.sequential(root)
        else:
            raise _unsupported("<model>", root.kind or "<unknown>", "", "model")
        if len(self.g) == 0:
            raise UnsupportedOpError("the model is empty: no module was recognised")
        return self.g


def _tree_for(loaded: LoadedModel) -> ModuleTree:
    if loaded.program is not None:
        return tree_from_export(loaded.program)
    if isinstance(loaded.module, torch.jit.ScriptModule):
        return tree_from_script(loaded.module)
    return tree_from_module(loaded.module)


def trace(model_or_loaded: Any, example_input: Any = None, config: Any = None) -> Graph:
    """Float IR graph of a model (``LoadedModel``, eager ``nn.Module``, ``ScriptModule`` or ``ExportedProgram``).

    ``example_input`` (optional, [B, T, d] or token ids [B, T]) checks the result: the model and the IR
    interpreter are both run on it and the largest logit difference is stored in ``graph.meta['validation']``.
    """
    loaded = wrap_module(model_or_loaded, config) if not isinstance(model_or_loaded, LoadedModel) else model_or_loaded
    if config is not None and isinstance(model_or_loaded, LoadedModel):
        from neurocompile.frontend.load import resolve_config

        loaded = LoadedModel(loaded.module, resolve_config(config), loaded.format, loaded.path, loaded.sha256,
                             loaded.metrics, loaded.program)
    tree = _tree_for(loaded)
    name = loaded.path.stem if loaded.path else "model"
    root = tree.root
    if (root.ours and root.kind == "SSMClassifier") or is_s4d_layout(root) or \
            (root.kind == "Sequential" and (root.torch_nn or root.module is None)):
        tracer = _Tracer(tree, loaded.config, name)
        g = tracer.run()
        family, stripped, trace_map, recognised = tracer.family, tracer.stripped, tracer.trace_map, []
    else:  # any other root: the program's dataflow (frontend/open_trace.py)
        from neurocompile.frontend.open_trace import trace_program

        g, info = trace_program(loaded, name, example_input)
        family, stripped, trace_map = info["family"], info["stripped"], info["trace_map"]
        recognised = info["proofs"]
    g.meta = {
        "family": (loaded.config or {}).get("family") or family,
        "config": loaded.config,
        "stripped": stripped,
        "trace_map": trace_map,
        "source": {"format": loaded.format},  # no path or hash: the IR depends on the model, not on its file
    }
    g.recognised = recognised  # what the open frontend recognised and its numeric proofs (inspect prints them)
    from neurocompile.ir.verify import check

    check(g)
    if example_input is not None:
        g.meta["validation"] = _validate(loaded, g, example_input)
    return g


def _validate(loaded: LoadedModel, g: Graph, x: Any) -> dict[str, float]:
    from neurocompile.ir.interpret import interpret

    xt = torch.as_tensor(x)
    try:
        with torch.no_grad():
            ref = loaded.module(xt)
    except Exception as exc:
        raise NeurocompileError(f"the model cannot run on example_input of shape {list(xt.shape)}: "
                                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if isinstance(ref, (tuple, list)):
        ref = ref[0]
    ref_np = ref.detach().double().numpy()
    xin = xt.numpy()
    if xin.ndim == 2 and not g.node(g.inputs[0]).tokens:
        xin = xin[..., None]
    got = interpret(g, xin).logits
    scale = max(1e-12, float(np.abs(ref_np).max()))
    err = float(np.abs(got.reshape(ref_np.shape) - ref_np).max())
    return {"max_abs_diff": err, "scale": scale, "rel_diff": err / scale, "samples": int(ref_np.shape[0])}
