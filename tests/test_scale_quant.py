"""A dense row whose bias takes the accumulator's range: a warning naming the bias, not an overflow error."""

from __future__ import annotations

import types

import numpy as np
import pytest

from neurocompile.errors import QuantizationError
from neurocompile.passes import qmath
from neurocompile.passes._emit import Emitter
from neurocompile.passes.common import CompileOptions, PassContext, Precision


def emitter(out_bits: int = 16) -> Emitter:
    em = Emitter.__new__(Emitter)
    em.ctx = PassContext(Precision(), CompileOptions())
    em.p = em.ctx.precision
    em.plan = types.SimpleNamespace(bits={"encoder": out_bits})
    return em


def test_bias_dominated_row_is_a_precision_warning_naming_the_bias() -> None:
    # the H = 256 encoder case: weight 0.0004 output units per input unit over a 17-bit input, bias 7,492 units
    w_hat, b_hat = np.array([[0.0004], [0.2]]), np.array([7491.8, 10.0])
    rq = qmath.quantize_rows(w_hat, 127, (1 << 23) - 1, 65535, b_hat)
    assert rq.zeroed == [0]  # its weight rounds to 0 at the shift the bias allows
    em = emitter()
    with pytest.warns(UserWarning, match=r"channel 0: its bias \(7,492 output units\) takes the 24-bit"):
        em._zeroed("encoder", rq.zeroed, w_hat, b_hat, 65535)
    assert "at most 26.2 of 32,767 output units" in em.ctx.info["warnings"][0]


def test_a_row_whose_inputs_overflow_is_still_an_error() -> None:
    w_hat = np.full((1, 5000), 1.0)  # 5,000 inputs x 65,535: over 2^23 even with 1-level weights
    rq = qmath.quantize_rows(w_hat, 127, (1 << 23) - 1, 65535, None)
    assert rq.zeroed == [0]
    with pytest.raises(QuantizationError, match=r"its 5000 inputs .* overflow the 24-bit accumulator"):
        emitter()._zeroed("encoder", rq.zeroed, w_hat, None, 65535)
