"""One small network against SANA-FE 2.2.9 (skipped when sanafe is not installed): benchmarks/vs_sanafe.py."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("sanafe")
pytest.importorskip("nir")


def _bench():
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "vs_sanafe.py"
    spec = importlib.util.spec_from_file_location("vs_sanafe", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("vs_sanafe", mod)  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("reset, mapping", [
    ("zero", {0: 9, 1: 38}),  # two tiles apart: hops east-west and north-south
    pytest.param("subtract", "packed", marks=pytest.mark.slow),  # each SANA-FE run builds its chip: ~15 s
])
def test_small_network_agrees_with_sanafe(tmp_path, reset, mapping):
    b = _bench()
    net = b.Net("ci", [24, 32, 16], reset=reset, wmin=-4, wmax=5, threshold=8.0, rate=0.2, mapping=mapping, seed=4)
    r = b.compare(net, 30, str(tmp_path), quiet=True)
    assert r["spikes_identical"] and r["spikes"] > 0
    for k, err in r["energy_err"].items():
        assert err <= 0.02, (k, r["energy"][k])
    assert r["latency_err_cycle"] <= 0.10, r["latency"]
    assert abs(r["latency"]["analytical"] - r["latency"]["sanafe"]) / r["latency"]["sanafe"] <= 0.25
