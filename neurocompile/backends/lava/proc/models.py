"""Fixed-point ProcessModels (tag ``fixed_pt``) of neurocompile's Lava Processes.

The arithmetic here is written from docs/semantics.md, on purpose independently of
``neurocompile/sim/kernels.py``: the tests compare the two implementations bit for bit, so the spec is
checked twice. All values are int64 (exact); every width is enforced by the explicit saturations below.

Each ``run_spk`` receives this step's inputs, computes, and sends the output in the same phase
(zero-delay message passing along the DAG), then sends ``[output | state]`` on the host tap.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from neurocompile.backends.lava.proc import process as P

I64 = np.int64


# -- fixed-point primitives (docs/semantics.md section 1), written for this backend ----------------------
def _shift_amounts(s) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(s, I64)
    return np.maximum(s, 0), np.maximum(-s, 0)


def trunc_shift(x: np.ndarray, s: int) -> np.ndarray:
    """sign(x) * (|x| >> s), toward zero; s <= 0 shifts left."""
    if s <= 0:
        return np.left_shift(x, -s)
    return np.sign(x) * np.right_shift(np.abs(x), s)


def round_shift(x: np.ndarray, s) -> np.ndarray:
    """(x + 2^(s-1)) >> s (half up) for s > 0, x << -s for s <= 0; s may be per channel."""
    right, left = _shift_amounts(s)
    half = np.right_shift(np.left_shift(I64(1), right), 1)  # 2^(s-1), or 0 when s <= 0
    return np.left_shift(np.right_shift(x + half, right), left)


def floor_shift(x: np.ndarray, s) -> np.ndarray:
    """x >> s (toward -inf) for s > 0, x << -s for s <= 0 (Lava Dense's weight_exp)."""
    right, left = _shift_amounts(s)
    return np.left_shift(np.right_shift(x, right), left)


def saturate(x: np.ndarray, bits: int) -> np.ndarray:
    """Symmetric clip to +-(2^(bits-1) - 1); bits = 0: no clip."""
    if bits <= 0:
        return x
    top = (1 << (bits - 1)) - 1
    return np.clip(x, -top, top)


def fire(v: np.ndarray, vth: np.ndarray, compare: str) -> np.ndarray:
    return (v >= vth if compare == ">=" else v > vth).astype(I64)


# -- host I/O -------------------------------------------------------------------------------------------
@implements(proc=P.HostSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyHostSourceModel(PyLoihiProcessModel):
    """Relays one host row per step: ``[reset, last | x]`` -> ``ctrl`` and ``s_out``."""

    inp: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I64)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I64, precision=24)
    ctrl: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I64, precision=2)

    def run_spk(self) -> None:
        row = self.inp.recv()
        self.ctrl.send(row.reshape(-1, row.shape[-1])[0, : P.CTRL_SIZE])
        self.s_out.send(row[..., P.CTRL_SIZE:])


@implements(proc=P.HostTap, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyHostTapModel(PyLoihiProcessModel):
    """Forwards its input to the host, one row per step."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I64, precision=32)
    tap: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I64)

    def run_spk(self) -> None:
        self.tap.send(self.a_in.recv())


# -- node models ----------------------------------------------------------------------------------------
class AbstractQModel(PyLoihiProcessModel):
    """Common step of every node model: ctrl (stateful nodes), compute, send output, send tap."""

    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I64, precision=24)
    tap: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I64)
    STATE_VARS: tuple[str, ...] = ()  # state Vars, in tap order
    HAS_CTRL = False

    def run_spk(self) -> None:
        last = False
        self._clipped = np.zeros(tuple(self.proc_params["lead"]), I64)
        if self.HAS_CTRL:
            ctrl = self.ctrl.recv()
            if ctrl[P.CTRL_RESET]:
                for name in self.STATE_VARS:
                    getattr(self, name)[...] = 0
            last = bool(ctrl[P.CTRL_LAST])
        y = self.compute(last)
        self.s_out.send(y)
        self.send_tap(y, [self.state_row(name) for name in self.STATE_VARS])

    def send_tap(self, y: np.ndarray, states: list[np.ndarray]) -> None:
        """Host tap row per sample: [output | states | values clipped this step]."""
        lead = y.shape[:-1]
        parts = [y] + [st.reshape(lead + (-1,)) for st in states] + [self._clipped.reshape(lead + (1,))]
        self.tap.send(np.concatenate(parts, axis=-1))

    def saturate(self, x: np.ndarray, bits: int) -> np.ndarray:
        """:func:`saturate`, counting the clipped values per sample (docs/semantics.md: every clip is counted)."""
        y = saturate(x, bits)
        self.count_clipped(y != x)
        return y

    def count_clipped(self, mask: np.ndarray) -> None:
        lead = self._clipped.shape
        self._clipped = self._clipped + mask.reshape(lead + (-1,)).sum(axis=-1)

    def state_row(self, name: str) -> np.ndarray:
        return getattr(self, name)

    def compute(self, last: bool) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class AbstractQStatefulModel(AbstractQModel):
    HAS_CTRL = True
    ctrl: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I64, precision=2)


@implements(proc=P.QEmbeddingProc, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyQEmbeddingModel(AbstractQModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I64, precision=24)
    table: np.ndarray = LavaPyType(np.ndarray, I64, precision=24)

    def compute(self, last: bool) -> np.ndarray:
        ids = self.a_in.recv()[..., 0]
        return self.table[ids]


@implements(proc=P.QDenseProc, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyQDenseModel(AbstractQStatefulModel):
    """acc = W x + b; y = sat(shift(acc)); with a delay, y leaves ``delay`` steps later."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I64, precision=24)
    weight: np.ndarray = LavaPyType(np.ndarray, I64, precision=8)
    bias: np.ndarray = LavaPyType(np.ndarray, I64, precision=32)
    shift: np.ndarray = LavaPyType(np.ndarray, I64, precision=6)
    pipe: np.ndarray = LavaPyType(np.ndarray, I64, precision=32)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.delay = int(proc_params["delay"])
        self.STATE_VARS = ("pipe",) if self.delay > 0 else ()

    def compute(self, last: bool) -> np.ndarray:
        x = self.a_in.recv()
        acc = np.einsum("oi,...i->...o", self.weight, x) + self.bias
        if self.proc_params["rounding"] == "floor":
            y = floor_shift(acc, self.shift)
        else:
            y = round_shift(acc, self.shift)
        y = self.saturate(y, self.proc_params["out_bits"])
        if self.delay == 0:
            return y
        out = self.pipe[0].copy()
        self.pipe[:-1] = self.pipe[1:]
        self.pipe[-1] = y
        return out

    def state_row(self, name: str) -> np.ndarray:
        # tap layout per sample: pipe entries oldest first
        return np.moveaxis(self.pipe, 0, -2)


@implements(proc=P.QModeBankProc, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyQModeBankModel(AbstractQStatefulModel):
    """One complex mode per (channel, mode) as two 24-bit compartments (re, im); output = the new state."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I64, precision=24)
    a_re: np.ndarray = LavaPyType(np.ndarray, I64, precision=13)
    a_im: np.ndarray = LavaPyType(np.ndarray, I64, precision=13)
    b_re: np.ndarray = LavaPyType(np.ndarray, I64, precision=8)
    b_im: np.ndarray = LavaPyType(np.ndarray, I64, precision=8)
    b_shift: np.ndarray = LavaPyType(np.ndarray, I64, precision=6)
    re: np.ndarray = LavaPyType(np.ndarray, I64, precision=24)
    im: np.ndarray = LavaPyType(np.ndarray, I64, precision=24)
    STATE_VARS = ("re", "im")

    def run_spk(self) -> None:
        # the output already is the state: the tap carries it once
        ctrl = self.ctrl.recv()
        if ctrl[P.CTRL_RESET]:
            self.re[...] = 0
            self.im[...] = 0
        self._clipped = np.zeros(tuple(self.proc_params["lead"]), I64)
        y = self.compute(False)
        self.s_out.send(y)
        self.send_tap(y, [])

    def compute(self, last: bool) -> np.ndarray:
        u = self.a_in.recv()[..., None]  # [..., H, 1]
        f = self.proc_params["coef_frac_bits"]
        bits = self.proc_params["out_bits"]
        k = self.b_shift[:, None]
        in_re = round_shift(self.b_re * u, k)
        in_im = round_shift(self.b_im * u, k)
        re, im = self.re, self.im
        rot_re = trunc_shift(self.a_re * re - self.a_im * im, f)
        rot_im = trunc_shift(self.a_im * re + self.a_re * im, f)
        self.re[...] = self.saturate(rot_re + in_re, bits)
        self.im[...] = self.saturate(rot_im + in_im, bits)
        return np.stack([self.re, self.im], axis=-1).reshape(u.shape[:-2] + (-1,))


@implements(proc=P.QModeReadoutProc, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyQModeReadoutModel(AbstractQModel):
    state_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I64, precision=24)
    skip_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I64, precision=24)
    c_re: np.ndarray = LavaPyType(np.ndarray, I64, precision=8)
    c_im: np.ndarray = LavaPyType(np.ndarray, I64, precision=8)
    d: np.ndarray = LavaPyType(np.ndarray, I64, precision=8)
    shift: np.ndarray = LavaPyType(np.ndarray, I64, precision=6)

    def compute(self, last: bool) -> np.ndarray:
        h, m = self.c_re.shape
        st = self.state_in.recv()
        skip = self.skip_in.recv()
        st = st.reshape(st.shape[:-1] + (h, m, 2))
        acc = np.sum(self.c_re * st[..., 0] + self.c_im * st[..., 1], axis=-1) + self.d * skip
        return self.saturate(round_shift(acc, self.shift), self.proc_params["out_bits"])


@implements(proc=P.QLIFProc, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyQLIFModel(AbstractQStatefulModel):
    """v' = sat(trunc(decay v) + x); spike on v' >= vth (or >); reset to 0 or subtract vth."""

    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I64, precision=1)
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I64, precision=24)
    vth: np.ndarray = LavaPyType(np.ndarray, I64, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, I64, precision=24)
    STATE_VARS = ("v",)

    def compute(self, last: bool) -> np.ndarray:
        pp = self.proc_params
        x = self.a_in.recv()
        v = self.saturate(trunc_shift(pp["decay"] * self.v, pp["coef_frac_bits"]) + x, pp["state_bits"])
        s = fire(v, self.vth, pp["compare"])
        after = np.zeros_like(v) if pp["reset"] == "zero" else v if pp["reset"] == "none" else v - self.vth
        self.v[...] = np.where(s == 1, after, v)
        return s


@implements(proc=P.QHeavisideProc, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyQHeavisideModel(AbstractQModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I64, precision=1)
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I64, precision=24)
    vth: np.ndarray = LavaPyType(np.ndarray, I64, precision=24)

    def compute(self, last: bool) -> np.ndarray:
        return fire(self.a_in.recv(), self.vth, self.proc_params["compare"])


@implements(proc=P.QRefractoryProc, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyQRefractoryModel(AbstractQStatefulModel):
    """Soft reset one step late plus a decaying refractory trace r (R fractional bits)."""

    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I64, precision=1)
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I64, precision=24)
    vth: np.ndarray = LavaPyType(np.ndarray, I64, precision=24)
    rho: np.ndarray = LavaPyType(np.ndarray, I64, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, I64, precision=24)
    s: np.ndarray = LavaPyType(np.ndarray, I64, precision=1)
    r: np.ndarray = LavaPyType(np.ndarray, I64, precision=24)
    STATE_VARS = ("v", "s", "r")

    def compute(self, last: bool) -> np.ndarray:
        pp = self.proc_params
        f, rb, bits = pp["coef_frac_bits"], pp["trace_frac_bits"], pp["state_bits"]
        x = self.a_in.recv()
        v = (trunc_shift(pp["decay"] * self.v, f) + x - self.vth * self.s
             - round_shift(self.rho * self.r, rb))
        v = self.saturate(v, bits)
        s = (v >= self.vth).astype(I64)
        self.r[...] = self.saturate(trunc_shift(pp["lam"] * self.r, f) + np.left_shift(s, rb), bits)
        self.v[...] = v
        self.s[...] = s
        return s


@implements(proc=P.QLUTProc, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyQLUTModel(AbstractQModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I64, precision=24)
    table: np.ndarray = LavaPyType(np.ndarray, I64, precision=24)

    def compute(self, last: bool) -> np.ndarray:
        idx = round_shift(self.a_in.recv(), self.proc_params["in_shift"]) + self.proc_params["offset"]
        inside = np.clip(idx, 0, self.table.shape[0] - 1)
        self.count_clipped(inside != idx)  # an index outside the table is clamped and counted
        return self.table[inside]


@implements(proc=P.QMulProc, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyQMulModel(AbstractQModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I64, precision=24)
    b_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I64, precision=24)

    def compute(self, last: bool) -> np.ndarray:
        prod = self.a_in.recv() * self.b_in.recv()
        return self.saturate(round_shift(prod, self.proc_params["shift"]), self.proc_params["out_bits"])


def _rsh_round_int(v: int, s: int) -> int:
    """Python-int round half up of v / 2^s (s <= 0: v << -s)."""
    return (v + (1 << (s - 1))) >> s if s > 0 else v << -s


@implements(proc=P.QLayerNormProc, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyQLayerNormModel(AbstractQModel):
    """Per sample: integer mean, centred values, variance, 1/sqrt look-up by the variance's mantissa, gain, bias.

    Written with Python integers (unbounded), one sample row at a time, so that it also checks that the
    simulator's int64 arithmetic never overflows on the tested data.
    """

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I64, precision=24)
    rsqrt_table: np.ndarray = LavaPyType(np.ndarray, I64, precision=24)
    weight: np.ndarray = LavaPyType(np.ndarray, I64, precision=8)
    bias: np.ndarray = LavaPyType(np.ndarray, I64, precision=24)
    shift: np.ndarray = LavaPyType(np.ndarray, I64, precision=8)

    def compute(self, last: bool) -> np.ndarray:
        pp = self.proc_params
        m, km, kv, eps, L = pp["mean_mul"], pp["mean_shift"], pp["var_shift"], pp["eps"], pp["index_bits"]
        x = np.asarray(self.a_in.recv(), I64)
        rows = x.reshape(-1, x.shape[-1])
        table = [int(t) for t in self.rsqrt_table]
        w = [int(v) for v in self.weight]
        k = [int(v) for v in self.shift]
        out = np.zeros(rows.shape, I64)
        for b in range(rows.shape[0]):
            xs = [int(v) for v in rows[b]]
            mean = _rsh_round_int(sum(xs) * m, km)
            d = [v - mean for v in xs]
            var = max(_rsh_round_int(sum(v * v for v in d) * m, km + kv) + eps, 1)
            j = max(0, -(-(var.bit_length() - L) // 2))  # ceil((bits(var) - L) / 2): var < 2^(L + 2j)
            r = table[_rsh_round_int(var, 2 * j)]
            out[b] = [_rsh_round_int(di * r * wi, ki + j) for di, wi, ki in zip(d, w, k)]
        return self.saturate(out.reshape(x.shape) + self.bias, pp["out_bits"])


@implements(proc=P.QTernarizeProc, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyQTernarizeModel(AbstractQModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I64, precision=2)
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I64, precision=24)

    def compute(self, last: bool) -> np.ndarray:
        x = self.a_in.recv()
        mag = np.abs(x)
        peak = mag.max(axis=-1, keepdims=True)
        keep = (mag * self.proc_params["den"] >= self.proc_params["num"] * peak) & (peak > 0)
        return np.sign(x) * keep.astype(I64)


@implements(proc=P.QAddProc, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyQAddModel(AbstractQModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I64, precision=24)

    def compute(self, last: bool) -> np.ndarray:
        return self.saturate(self.a_in.recv(), self.proc_params["out_bits"])


@implements(proc=P.QAccumulateProc, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyQAccumulateModel(AbstractQStatefulModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I64, precision=32)
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I64, precision=24)
    acc: np.ndarray = LavaPyType(np.ndarray, I64, precision=32)
    STATE_VARS = ("acc",)

    def compute(self, last: bool) -> np.ndarray:
        self.acc[...] = self.saturate(self.acc + self.a_in.recv(), self.proc_params["out_bits"])
        return self.acc.copy() if last else np.zeros_like(self.acc)


@implements(proc=P.QLavaLIFProc, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyQLavaLIFModel(AbstractQStatefulModel):
    """Current u (wraps once at 24 bits), voltage v (saturates), spike when v > vth << 6, reset v to 0."""

    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I64, precision=1)
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I64, precision=24)
    vth: np.ndarray = LavaPyType(np.ndarray, I64, precision=17)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, I64, precision=13)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, I64, precision=3)
    u: np.ndarray = LavaPyType(np.ndarray, I64, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, I64, precision=24)
    STATE_VARS = ("u", "v")

    def compute(self, last: bool) -> np.ndarray:
        pp = self.proc_params
        f, bits = pp["coef_frac_bits"], pp["state_bits"]
        unity, top = 1 << f, 1 << (bits - 1)
        u = trunc_shift(self.u * (unity - (pp["du"] + 1)), f) + np.left_shift(self.a_in.recv(), pp["act_shift"])
        u = np.where(u > top, u - 2 * top, u)
        u = np.where(u <= -top, u + 2 * top, u)
        bias = floor_shift(self.bias_mant, -self.bias_exp)
        v = self.saturate(trunc_shift(self.v * (unity - pp["dv"]), f) + u + bias, bits)
        s = (v > np.left_shift(self.vth, pp["vth_shift"])).astype(I64)
        self.u[...] = u
        self.v[...] = np.where(s == 1, 0, v)
        return s


@implements(proc=P.EdgeDelayProc, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyEdgeDelayModel(PyLoihiProcessModel):
    """A delay line: out_t = in_{t-d}."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I64, precision=32)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I64, precision=32)
    ctrl: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I64, precision=2)
    pipe: np.ndarray = LavaPyType(np.ndarray, I64, precision=32)

    def run_spk(self) -> None:
        if self.ctrl.recv()[P.CTRL_RESET]:
            self.pipe[...] = 0
        out = self.pipe[0].copy()
        self.pipe[:-1] = self.pipe[1:]
        self.pipe[-1] = self.a_in.recv()
        self.s_out.send(out)
