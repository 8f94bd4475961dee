"""Recognise diagonal SSM layers by their parameters and prove each match numerically.

A module is an SSM candidate when its own tensors together with those of its children hold the S4D signature:
``log_dt``, a real part of A (``log_A_real``: A_re = -exp; ``A_real``: A_re itself; ``inv_A_real``:
A_re = -softplus), ``A_imag``, ``C`` (complex or a real view [..., 2], an optional leading channel axis of 1) and
``D`` ([H] or [1, H]); ``B`` is optional (absent: ones). The state-spaces layout keeps ``D`` on the layer and the
rest on its ``.kernel`` child; both are found. A match is only accepted when some value computed inside the module
equals the closed form of the diagonal modes applied to the module's input,

    y_t = 2 Re(sum_n C_n h_{n,t}) + D u_t,  h_t = dA h_{t-1} + dB u_t,

to float tolerance (max |difference| <= 1e-4 * max |y|), for zero-order hold (dA = exp(dt A),
dB = (dA - 1)/A B) or bilinear (dA = (1 + dt A/2)/(1 - dt A/2), dB = dt B/(1 - dt A/2)) discretisation. A bilinear
layer is stored as the ZOH S4D with the same dA and dB (A' = log(dA)/dt, B' = dB A'/(dA - 1)), which is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from neurocompile.errors import UnsupportedOpError
from neurocompile.ir import nodes as fl

__all__ = ["SSMParams", "closed_form", "find_ssm_params", "to_node"]

_REAL_KEYS = ("log_A_real", "A_real", "inv_A_real")
_NEEDED = ("log_dt", "A_imag", "C", "D")


@dataclass
class SSMParams:
    """Continuous parameters of one diagonal SSM layer (float64 / complex128), found at ``path``."""

    path: str
    log_dt: np.ndarray  # [H]
    A: np.ndarray  # [H, M] complex
    B: np.ndarray  # [H, M] complex
    C: np.ndarray  # [H, M] complex
    D: np.ndarray  # [H]
    keys: dict[str, str]  # signature name -> tensor key in the model

    @property
    def H(self) -> int:
        return int(self.D.shape[0])

    def discretise(self, method: str) -> tuple[np.ndarray, np.ndarray]:
        dt = np.exp(self.log_dt)[:, None]
        if method == "zoh":
            dA = np.exp(dt * self.A)
            return dA, (dA - 1.0) / self.A * self.B
        dA = (1 + dt * self.A / 2) / (1 - dt * self.A / 2)
        return dA, dt * self.B / (1 - dt * self.A / 2)


def _complex(t: torch.Tensor, key: str) -> np.ndarray:
    a = t.detach().cpu()
    if a.is_complex():
        return a.resolve_conj().numpy().astype(np.complex128)
    if a.dim() >= 1 and a.shape[-1] == 2:
        a = a.double().numpy()
        return a[..., 0] + 1j * a[..., 1]
    raise UnsupportedOpError(f"SSM parameter '{key}' of shape {list(a.shape)} is neither complex nor a real view "
                             f"[..., 2]; expected complex C/B [H, N/2]")


def _squeeze_lead(a: np.ndarray) -> np.ndarray:
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    return a


def find_ssm_params(tensors: dict[str, torch.Tensor], paths: list[str]) -> list[SSMParams]:
    """SSM layers among module ``paths`` (``tensors``: fully qualified key -> tensor), innermost complete owner."""
    by_path: dict[str, dict[str, str]] = {}
    for key in tensors:
        owner, _, name = key.rpartition(".")
        by_path.setdefault(owner, {})[name] = key
    found: list[SSMParams] = []
    claimed: set[str] = set()
    for path in sorted(set(paths) | set(by_path), key=lambda p: (-p.count("."), p)):  # innermost first
        sig: dict[str, str] = {}
        for owner, names in by_path.items():
            parent = owner.rpartition(".")[0] if owner else None
            if owner != path and parent != path:  # the module itself and its direct children only
                continue
            for n, k in names.items():
                if n in _NEEDED + _REAL_KEYS + ("B",) and n not in sig:
                    sig[n] = k
        if not all(n in sig for n in _NEEDED) or not any(n in sig for n in _REAL_KEYS):
            continue
        if any(k in claimed for k in sig.values()):
            continue
        found.append(_parse(path, sig, tensors))
        claimed.update(sig.values())
    return found


def _parse(path: str, sig: dict[str, str], tensors: dict[str, torch.Tensor]) -> SSMParams:
    where = f"SSM layer '{path or '<root>'}'"

    def real(name: str) -> np.ndarray:
        return tensors[sig[name]].detach().cpu().double().numpy()

    log_dt = real("log_dt").reshape(-1)
    a_im = _squeeze_lead(real("A_imag"))
    if "log_A_real" in sig:
        a_re = -np.exp(_squeeze_lead(real("log_A_real")))
    elif "inv_A_real" in sig:
        a_re = -np.logaddexp(0.0, _squeeze_lead(real("inv_A_real")))
    else:
        a_re = _squeeze_lead(real("A_real"))
    C = _squeeze_lead(_complex(tensors[sig["C"]], sig["C"]))
    if C.ndim == 3:
        raise UnsupportedOpError(
            f"{where} (parameter {sig['C']}, shape {list(tensors[sig['C']].shape)}): {C.shape[0]} output channels "
            f"of C (a bidirectional or multi-channel S4D) cannot stream on the target, which runs forward in time "
            f"only; use a unidirectional layer with one channel")
    B = _squeeze_lead(_complex(tensors[sig["B"]], sig["B"])) if "B" in sig else np.ones_like(C)
    D = real("D").reshape(-1)
    H = D.shape[0]
    shapes = {"log_dt": log_dt.shape, "A_imag": a_im.shape, "A_real": a_re.shape, "B": B.shape, "C": C.shape}
    M = a_re.shape[-1] if a_re.ndim == 2 else -1
    want = {"log_dt": (H,), "A_imag": (H, M), "A_real": (H, M), "B": (H, M), "C": (H, M)}
    for k, shp in shapes.items():
        if tuple(shp) != want[k]:
            raise UnsupportedOpError(f"{where}: {k} has shape {list(shp)}, expected {list(want[k])} for H={H} "
                                     f"channels (from D) and N/2={M} modes")
    return SSMParams(path, log_dt, a_re + 1j * a_im, B, C, D, dict(sig))


def closed_form(p: SSMParams, u: np.ndarray, method: str) -> np.ndarray:
    """Diagonal-mode output for u [B, T, H] (float64), by the explicit recurrence."""
    dA, dB = p.discretise(method)
    h = np.zeros((u.shape[0],) + dA.shape, np.complex128)
    y = np.empty_like(u, dtype=np.float64)
    for t in range(u.shape[1]):
        h = dA * h + dB * u[:, t, :, None]
        y[:, t] = 2.0 * (p.C * h).sum(-1).real + p.D * u[:, t]
    return y


def to_node(p: SSMParams, method: str) -> fl.S4D:
    """The IR S4D node (ZOH form) computing the same recurrence as ``p`` discretised with ``method``."""
    A, B = p.A, p.B
    if method == "bilinear":
        dA, dB = p.discretise("bilinear")
        A = np.log(dA) / np.exp(p.log_dt)[:, None]
        B = dB * A / (dA - 1.0)
    if np.any(A.real >= 0):
        raise UnsupportedOpError(f"SSM layer '{p.path}': real part of A has values >= 0 (max {A.real.max():.3g}); "
                                 f"the IR needs a stable SSM (negative real parts)")
    return fl.S4D(log_dt=p.log_dt.astype(np.float32), A_re=A.real.astype(np.float32),
                  A_im=A.imag.astype(np.float32), B=B.astype(np.complex64), C=p.C.astype(np.complex64),
                  D=p.D.astype(np.float32), C2=np.zeros((0, 0), np.complex64))


def probe_module(view, node: fl.S4D, name: str) -> None:
    """Check numerically that an S4D-layout module of a foreign class computes the ZOH S4D the IR node defines."""
    from neurocompile.ir.interpret import interpret

    mod = view.module
    H = node.out_size()
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(2, 24, H, generator=gen)
    dtype = next((t.dtype for t in view.tensors.values() if t.is_floating_point()), torch.float32)
    from neurocompile.ir.graph import Graph

    g = Graph("probe")
    g.add("u", fl.Input(size=H))
    g.add("s", node, "u")
    g.inputs, g.outputs = ["u"], ["s"]
    ref = interpret(g, u.double().numpy()).outputs["s"]
    errors = []
    for transposed in (False, True):
        x = (u.transpose(1, 2) if transposed else u).to(dtype)
        try:
            with torch.no_grad():
                y = mod(x)
        except Exception as exc:  # the module may use the other layout
            errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            continue
        if isinstance(y, (tuple, list)):
            y = y[0]
        if not isinstance(y, torch.Tensor) or tuple(y.shape) != tuple(x.shape):
            errors.append(f"output shape {list(getattr(y, 'shape', []))} for input {list(x.shape)}")
            continue
        y = y.transpose(1, 2) if transposed else y
        got = y.detach().double().numpy()
        scale = max(1.0, float(np.abs(ref).max()))
        err = float(np.abs(got - ref).max())
        if err <= 1e-3 * scale:
            return
        raise UnsupportedOpError(
            f"module '{view.path}' ({view.kind}) has the S4D parameter layout but does not compute the ZOH S4D of "
            f"IR node '{name}' (max difference {err:.3g} on a random probe, scale {scale:.3g}); a different "
            f"discretisation or parameterisation is not supported")
    raise UnsupportedOpError(f"module '{view.path}' ({view.kind}) with the S4D layout could not be run on a "
                             f"[B, L, H] or [B, H, L] probe ({'; '.join(errors)})")
