"""Lava Processes for neurocompile's integer nodes (the interfaces; the arithmetic is in ``models.py``).

One Process per hardware node of :mod:`neurocompile.ir.hw`. Every Process has

- one InPort per node port (``a_in`` for port 'in', ``state_in``/``skip_in`` for QModeReadout,
  ``a_in``/``b_in`` for QMul); several connections to one InPort are summed by Lava's ``recv``
  (dendritic accumulation, as docs/semantics.md section 2 asks);
- the OutPort ``s_out`` (the node's output message of this step, sent in the same ``run_spk`` that
  received the inputs: zero-delay edges, the graph is a DAG so this cannot deadlock);
- the OutPort ``tap``, an external pipe to the host carrying ``[output | state | number of values
  saturated this step]`` every step (how
  ``run`` records every layer without Lava's slow Monitor or element-wise ``Var.get``);
- stateful nodes only: the InPort ``ctrl`` ([reset, last] from the input source): ``reset`` zeroes the
  state before the first step of a sample, ``last`` marks the sequence's last step.

Shapes carry an optional leading batch dimension ``lead`` (``()`` or ``(B,)``): the same network then
runs B samples side by side, each with its own state.

This module imports Lava: import it only after :func:`~neurocompile.backends.lava._require.require_lava`.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var

CTRL_SIZE = 2  # [reset, last]
CTRL_RESET, CTRL_LAST = 0, 1


def _arr(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


class QProcess(AbstractProcess):
    """Base of neurocompile's integer Processes.

    Parameters
    ----------
    n_out : int
        Output size per sample.
    n_state : int
        Size of the flattened state appended to the tap (0 for stateless nodes).
    lead : tuple
        ``()`` for one sample, ``(B,)`` for a batch of B samples.
    tap_buffer : int
        Depth (in steps) of the tap pipe to the host.
    """

    STATEFUL = False

    def __init__(self, *, n_out: int, n_state: int = 0, lead: tuple = (), tap_buffer: int = 64,
                 name: str | None = None, **params) -> None:
        lead = tuple(int(b) for b in lead)
        super().__init__(name=name, n_out=n_out, n_state=n_state, lead=lead, **params)
        self.lead = lead
        self.s_out = OutPort(shape=lead + (n_out,))
        self.tap = OutPort(shape=lead + (n_out + n_state + 1,))  # [output | state | clipped values]
        self.tap.flag_external_pipe(buffer_size=tap_buffer)
        if self.STATEFUL:
            self.ctrl = InPort(shape=(CTRL_SIZE,))

    def in_port(self, port: str) -> InPort:
        """The InPort of graph port ``port``."""
        name = {"in": "a_in", "state": "state_in", "skip": "skip_in", "a": "a_in", "b": "b_in"}[port]
        return getattr(self, name)


class HostSource(AbstractProcess):
    """Feeds host data into the network, one step per ``run_spk``.

    The host writes ``[reset, last, x_0 .. x_{n-1}]`` per sample row into the external pipe ``inp``; the
    model sends ``x`` on ``s_out`` and ``[reset, last]`` (of row 0) on ``ctrl``.
    """

    def __init__(self, *, n_out: int, lead: tuple = (), in_buffer: int = 64, name: str | None = None) -> None:
        lead = tuple(int(b) for b in lead)
        super().__init__(name=name, n_out=n_out, lead=lead)
        self.inp = InPort(shape=lead + (CTRL_SIZE + n_out,))
        self.inp.flag_external_pipe(buffer_size=in_buffer)
        self.s_out = OutPort(shape=lead + (n_out,))
        self.ctrl = OutPort(shape=(CTRL_SIZE,))


class HostTap(AbstractProcess):
    """Forwards what arrives on ``a_in`` to the host (external pipe ``tap``); taps Lava's own Processes."""

    def __init__(self, *, n_out: int, lead: tuple = (), tap_buffer: int = 64, name: str | None = None) -> None:
        lead = tuple(int(b) for b in lead)
        super().__init__(name=name, n_out=n_out, lead=lead)
        self.a_in = InPort(shape=lead + (n_out,))
        self.tap = OutPort(shape=lead + (n_out,))
        self.tap.flag_external_pipe(buffer_size=tap_buffer)


class QEmbeddingProc(QProcess):
    """y = table[id]; ``a_in`` carries the token id (size 1)."""

    def __init__(self, *, table, lead: tuple = (), **kw) -> None:
        table = _arr(table)
        super().__init__(n_out=table.shape[1], lead=lead, **kw)
        self.a_in = InPort(shape=self.lead + (1,))
        self.table = Var(shape=table.shape, init=table)


class QDenseProc(QProcess):
    """Graded dense synapses with per-output shift, saturation and an optional delay (docs/semantics.md QDense).

    Always has ``ctrl``: with ``delay`` > 0 its pipe of pending outputs is state.
    """

    STATEFUL = True

    def __init__(self, *, weight, bias, shift, out_bits: int, rounding: str = "nearest", delay: int = 0,
                 lead: tuple = (), **kw) -> None:
        weight = _arr(weight)
        n_out, n_in = weight.shape
        super().__init__(n_out=n_out, n_state=delay * n_out, lead=lead, out_bits=out_bits,
                         rounding=rounding, delay=delay, **kw)
        self.a_in = InPort(shape=self.lead + (n_in,))
        self.weight = Var(shape=weight.shape, init=weight)
        self.bias = Var(shape=(n_out,), init=_arr(bias))
        self.shift = Var(shape=(n_out,), init=_arr(shift))
        # pending outputs, oldest first: pipe[0] is sent at the next step
        self.pipe = Var(shape=(max(delay, 1),) + self.lead + (n_out,), init=0)


class QModeBankProc(QProcess):
    """Complex SSM modes as (re, im) compartment pairs (docs/semantics.md QModeBank)."""

    STATEFUL = True

    def __init__(self, *, a_re, a_im, b_re, b_im, b_shift, coef_frac_bits: int, out_bits: int,
                 lead: tuple = (), **kw) -> None:
        a_re = _arr(a_re)
        h, m = a_re.shape
        super().__init__(n_out=2 * h * m, lead=lead, coef_frac_bits=coef_frac_bits, out_bits=out_bits, **kw)
        self.a_in = InPort(shape=self.lead + (h,))
        self.a_re = Var(shape=(h, m), init=a_re)
        self.a_im = Var(shape=(h, m), init=_arr(a_im))
        self.b_re = Var(shape=(h, m), init=_arr(b_re))
        self.b_im = Var(shape=(h, m), init=_arr(b_im))
        self.b_shift = Var(shape=(h,), init=_arr(b_shift))
        self.re = Var(shape=self.lead + (h, m), init=0)
        self.im = Var(shape=self.lead + (h, m), init=0)


class QModeReadoutProc(QProcess):
    """2 Re(C h) + D u per channel (docs/semantics.md QModeReadout); ports ``state_in`` and ``skip_in``."""

    def __init__(self, *, c_re, c_im, d, shift, out_bits: int, lead: tuple = (), **kw) -> None:
        c_re = _arr(c_re)
        h, m = c_re.shape
        super().__init__(n_out=h, lead=lead, out_bits=out_bits, **kw)
        self.state_in = InPort(shape=self.lead + (2 * h * m,))
        self.skip_in = InPort(shape=self.lead + (h,))
        self.c_re = Var(shape=(h, m), init=c_re)
        self.c_im = Var(shape=(h, m), init=_arr(c_im))
        self.d = Var(shape=(h,), init=_arr(d))
        self.shift = Var(shape=(h,), init=_arr(shift))


class QLIFProc(QProcess):
    """SpikingSSM LIF without current stage (docs/semantics.md QLIF)."""

    STATEFUL = True

    def __init__(self, *, decay: int, vth, coef_frac_bits: int, state_bits: int, reset: str, compare: str,
                 lead: tuple = (), **kw) -> None:
        vth = _arr(vth)
        n = vth.shape[0]
        super().__init__(n_out=n, n_state=n, lead=lead, decay=decay, coef_frac_bits=coef_frac_bits,
                         state_bits=state_bits, reset=reset, compare=compare, **kw)
        self.a_in = InPort(shape=self.lead + (n,))
        self.vth = Var(shape=(n,), init=vth)
        self.v = Var(shape=self.lead + (n,), init=0)


class QHeavisideProc(QProcess):
    """Stateless threshold spike (docs/semantics.md QHeaviside)."""

    def __init__(self, *, vth, compare: str, lead: tuple = (), **kw) -> None:
        vth = _arr(vth)
        n = vth.shape[0]
        super().__init__(n_out=n, lead=lead, compare=compare, **kw)
        self.a_in = InPort(shape=self.lead + (n,))
        self.vth = Var(shape=(n,), init=vth)


class QRefractoryProc(QProcess):
    """SPikE-SSM reset-refractory neuron (docs/semantics.md QRefractory); state [v, s, r]."""

    STATEFUL = True

    def __init__(self, *, decay: int, lam: int, vth, rho, coef_frac_bits: int, trace_frac_bits: int,
                 state_bits: int, lead: tuple = (), **kw) -> None:
        vth = _arr(vth)
        n = vth.shape[0]
        super().__init__(n_out=n, n_state=3 * n, lead=lead, decay=decay, lam=lam, coef_frac_bits=coef_frac_bits,
                         trace_frac_bits=trace_frac_bits, state_bits=state_bits, **kw)
        self.a_in = InPort(shape=self.lead + (n,))
        self.vth = Var(shape=(n,), init=vth)
        self.rho = Var(shape=(n,), init=_arr(rho))
        self.v = Var(shape=self.lead + (n,), init=0)
        self.s = Var(shape=self.lead + (n,), init=0)
        self.r = Var(shape=self.lead + (n,), init=0)


class QLUTProc(QProcess):
    """Elementwise look-up table (docs/semantics.md QLUT)."""

    def __init__(self, *, table, in_shift: int, offset: int, size: int, lead: tuple = (), **kw) -> None:
        table = _arr(table)
        super().__init__(n_out=size, lead=lead, in_shift=in_shift, offset=offset, **kw)
        self.a_in = InPort(shape=self.lead + (size,))
        self.table = Var(shape=table.shape, init=table)


class QMulProc(QProcess):
    """Elementwise product of ports ``a_in`` and ``b_in`` (docs/semantics.md QMul)."""

    def __init__(self, *, shift: int, size: int, out_bits: int, lead: tuple = (), **kw) -> None:
        super().__init__(n_out=size, lead=lead, shift=shift, out_bits=out_bits, **kw)
        self.a_in = InPort(shape=self.lead + (size,))
        self.b_in = InPort(shape=self.lead + (size,))


class QLayerNormProc(QProcess):
    """Integer LayerNorm over the channels of each sample's step (docs/semantics.md QLayerNorm)."""

    def __init__(self, *, size: int, mean_mul: int, mean_shift: int, var_shift: int, eps: int, index_bits: int,
                 rsqrt_table, weight, bias, shift, out_bits: int, lead: tuple = (), **kw) -> None:
        super().__init__(n_out=size, lead=lead, mean_mul=int(mean_mul), mean_shift=int(mean_shift),
                         var_shift=int(var_shift), eps=int(eps), index_bits=int(index_bits), out_bits=int(out_bits),
                         **kw)
        table = _arr(rsqrt_table)
        self.a_in = InPort(shape=self.lead + (size,))
        self.rsqrt_table = Var(shape=table.shape, init=table)
        self.weight = Var(shape=(size,), init=_arr(weight))
        self.bias = Var(shape=(size,), init=_arr(bias))
        self.shift = Var(shape=(size,), init=_arr(shift))


class QTernarizeProc(QProcess):
    """Per-step ternarisation against a fraction of the step's max |x| (docs/semantics.md QTernarize)."""

    def __init__(self, *, num: int, den: int, size: int, lead: tuple = (), **kw) -> None:
        super().__init__(n_out=size, lead=lead, num=num, den=den, **kw)
        self.a_in = InPort(shape=self.lead + (size,))


class QAddProc(QProcess):
    """Saturating sum of every connection into ``a_in`` (docs/semantics.md QAdd)."""

    def __init__(self, *, size: int, out_bits: int, lead: tuple = (), **kw) -> None:
        super().__init__(n_out=size, lead=lead, out_bits=out_bits, **kw)
        self.a_in = InPort(shape=self.lead + (size,))


class QAccumulateProc(QProcess):
    """Sequence sum; sends zeros until the step flagged ``last``, then acc_T (docs/semantics.md QAccumulate)."""

    STATEFUL = True

    def __init__(self, *, size: int, out_bits: int, lead: tuple = (), **kw) -> None:
        super().__init__(n_out=size, n_state=size, lead=lead, out_bits=out_bits, **kw)
        self.a_in = InPort(shape=self.lead + (size,))
        self.acc = Var(shape=self.lead + (size,), init=0)


class QLavaLIFProc(QProcess):
    """Lava's fixed-point LIF written from docs/semantics.md QLavaLIF (used when Lava's own LIF cannot take
    the node: per-neuron thresholds, a batch dimension, non-default widths); state [u, v]."""

    STATEFUL = True

    def __init__(self, *, du: int, dv: int, vth, bias_mant, bias_exp, coef_frac_bits: int, state_bits: int,
                 act_shift: int, vth_shift: int, lead: tuple = (), **kw) -> None:
        vth = _arr(vth)
        n = vth.shape[0]
        super().__init__(n_out=n, n_state=2 * n, lead=lead, du=du, dv=dv, coef_frac_bits=coef_frac_bits,
                         state_bits=state_bits, act_shift=act_shift, vth_shift=vth_shift, **kw)
        self.a_in = InPort(shape=self.lead + (n,))
        self.vth = Var(shape=(n,), init=vth)
        self.bias_mant = Var(shape=(n,), init=_arr(bias_mant))
        self.bias_exp = Var(shape=(n,), init=_arr(bias_exp))
        self.u = Var(shape=self.lead + (n,), init=0)
        self.v = Var(shape=self.lead + (n,), init=0)


class EdgeDelayProc(AbstractProcess):
    """An edge with ``delay`` d > 0 steps: sends what arrived d steps earlier (zeros before that)."""

    def __init__(self, *, n: int, delay: int, lead: tuple = (), name: str | None = None) -> None:
        lead = tuple(int(b) for b in lead)
        super().__init__(name=name, n=n, delay=delay, lead=lead)
        self.a_in = InPort(shape=lead + (n,))
        self.s_out = OutPort(shape=lead + (n,))
        self.ctrl = InPort(shape=(CTRL_SIZE,))
        self.pipe = Var(shape=(delay,) + lead + (n,), init=0)  # pipe[0] leaves next
