"""QSigmaDelta on Lava: its Process, its fixed_pt ProcessModel and its ``lava-process`` entry, in one module.

The model is written in the form of Lava's own ``Delta`` encoder (lava.proc.sdn, ``cum_error`` off: the last
input ``act`` and the unsent ``residue``) followed by the ``Sigma`` decoder its receivers run (``xhat``, the sum of
the messages), independently of the simulator's kernel (which keeps x_hat alone); docs/semantics.md QSigmaDelta.
It sends ``xhat`` on ``s_out``, the value the receivers' sigma holds, so consumers keep their semantics.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyInPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from neurocompile.backends.lava.network import PROCS, States
from neurocompile.backends.lava.proc.models import I64, AbstractQStatefulModel
from neurocompile.backends.lava.proc.process import QProcess
from neurocompile.ir import hw


class QSigmaDeltaProc(QProcess):
    """Delta encoder with threshold ``vth`` (input units) and its receivers' sigma; state [xhat | act | residue]."""

    STATEFUL = True

    def __init__(self, *, size: int, vth: int, lead: tuple = (), **kw: Any) -> None:
        super().__init__(n_out=size, n_state=3 * size, lead=lead, vth=int(vth), **kw)
        self.a_in = InPort(shape=self.lead + (size,))
        self.xhat = Var(shape=self.lead + (size,), init=0)
        self.act = Var(shape=self.lead + (size,), init=0)
        self.residue = Var(shape=self.lead + (size,), init=0)


@implements(proc=QSigmaDeltaProc, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyQSigmaDeltaModel(AbstractQStatefulModel):
    """delta = x - act + residue; s = delta where |delta| >= vth; residue = delta - s; act = x; xhat += s."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I64, precision=24)
    xhat: np.ndarray = LavaPyType(np.ndarray, I64, precision=24)
    act: np.ndarray = LavaPyType(np.ndarray, I64, precision=24)
    residue: np.ndarray = LavaPyType(np.ndarray, I64, precision=24)
    STATE_VARS = ("xhat", "act", "residue")

    def compute(self, last: bool) -> np.ndarray:
        x = self.a_in.recv().astype(I64)
        delta = x - self.act + self.residue
        s = np.where(np.abs(delta) >= self.proc_params["vth"], delta, 0)
        self.residue[...] = delta - s
        self.act[...] = x
        self.xhat[...] = self.xhat + s  # the receivers' sigma: the sum of the messages sent
        return self.xhat.copy()


def _p_sigma_delta(P: Any, node: hw.QSigmaDelta, kw: dict) -> tuple[Any, States]:
    n = node.out_size()
    return QSigmaDeltaProc(size=n, vth=node.theta, **kw), [("xhat", (n,)), ("act", (n,)), ("residue", (n,))]


if __name__ == "neurocompile.backends.lava.proc.sigma_delta":  # not when Lava's model search re-runs this file
    PROCS.add(hw.QSigmaDelta, _p_sigma_delta)
