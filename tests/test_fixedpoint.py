"""The shared fixed-point vocabulary: one rounding and one limit for the spec, the passes and QAT."""

from __future__ import annotations

import numpy as np
import torch

from neurocompile import fixedpoint as fx
from neurocompile.passes import binarize, common, qmath
from neurocompile.sim import fixed


def test_limit_values():
    assert [fx.limit(b) for b in (0, 1, 2, 8, 24)] == [0, 0, 1, 127, (1 << 23) - 1]


def test_round_half_away_on_ties_and_signs():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49, -0.51])
    assert fx.round_half_away(x).tolist() == [-3, -2, -1, 1, 2, 3, 0, -1]
    assert fx.round_half_away_like(torch.tensor(x)).tolist() == [-3, -2, -1, 1, 2, 3, 0, -1]


def test_every_layer_uses_the_one_definition():
    assert common.limit is fx.limit and fixed.limit is fx.limit and qmath.limit is fx.limit
    assert qmath.round_half_away is fx.round_half_away
    assert binarize.TERNARY_CUT is fx.TERNARY_CUT
