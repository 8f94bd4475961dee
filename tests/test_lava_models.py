"""Models compiled by neurocompile's own pipeline (export -> artifact) run on Lava exactly as in the simulator.

Two sets: small randomly initialised models of every family (always; they exercise the quantiser's real node
mix: QDense/QModeBank/QModeReadout/QLIF/QHeaviside/QRefractory/QLUT/QMul/QTernarize/QAdd/QAccumulate,
QEmbedding for token input), and the shipped checkpoints in examples/checkpoints (``<family>_<task>.pt``) on
20 held-out test samples. Every node's output at every step, the final states and the saturation counts must
be identical. Samples run batched (side by side in one Lava network) to keep the test short.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from neurocompile.backends.lava import lava_available

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = ROOT / "examples" / "checkpoints"
FAMILIES = ("spikingssm", "binary_s4d", "gsu", "spike_ssm")
TASKS = ("sdigits", "listops")

pytestmark = [pytest.mark.lava, pytest.mark.skipif(not lava_available(), reason="lava-nc 0.10.0 not importable")]


def _export(model: Path, out: Path, task: str) -> Path:
    from neurocompile import api

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # precision warnings of tiny random models are expected
        return api.export(model, "loihi2", out=out, force=True, console=False, calibration=task,
                          calibration_samples=64)


def _check_artifact(artifact: Path, task: str, n: int, steps: int | None = None) -> None:
    from neurocompile.backends import lava as nl
    from neurocompile.backends.lava.compare import compare, simulate_reference
    from neurocompile.datasets import load_dataset

    ds = load_dataset(task, split="test")
    x = ds.x[:n] if steps is None else ds.x[:n, :steps]
    net = nl.load(artifact, batch=n)
    res = nl.run(net, x)
    cmp = compare(net.graph, res, simulate_reference(net.graph, x))
    assert cmp.equal, f"{artifact.name}: {cmp}"
    assert cmp.values > 0


def _random_model(tmp: Path, family: str, task: str) -> Path:
    import torch

    from neurocompile.models import ModelConfig, SSMClassifier, save_checkpoint

    torch.manual_seed(0)
    if task == "listops":
        from neurocompile.models.data import LISTOPS_VOCAB_SIZE

        cfg = ModelConfig(family=family, encoder="embedding", vocab_size=LISTOPS_VOCAB_SIZE, n_classes=10, d_model=8,
                          d_state=4, n_layers=1)
    else:
        cfg = ModelConfig(family=family, d_input=1, n_classes=10, d_model=8, d_state=4, n_layers=2)
    path = tmp / f"{family}_{task}.pt"
    save_checkpoint(SSMClassifier(cfg).eval(), path, metrics={"task": task})
    return path


@pytest.mark.parametrize("family,task", [(f, "sdigits") for f in FAMILIES] + [("gsu", "listops")])
def test_pipeline_models_match_simulator(tmp_path: Path, family: str, task: str) -> None:
    model = _random_model(tmp_path, family, task)
    art = _export(model, tmp_path / f"{family}.loihi2", task)
    _check_artifact(art, task, n=3, steps=40 if task == "listops" else None)


def _shipped() -> list[Path]:
    """examples/checkpoints/<family>_<task>.pt (family names contain '_' themselves: spike_ssm, binary_s4d)."""
    found = []
    # the 784-step (s/ps)MNIST checkpoints have their own tests (test_smnist_models.py)
    for p in sorted(q for q in CHECKPOINTS.glob("*.pt") if "mnist" not in q.stem) if CHECKPOINTS.is_dir() else []:
        if any(p.stem.startswith(f + "_") and p.stem[len(f) + 1:] in TASKS for f in FAMILIES):
            found.append(p)
    return found


SHIPPED = _shipped()


@pytest.mark.slow
@pytest.mark.skipif(not SHIPPED, reason="no shipped checkpoints in examples/checkpoints")
@pytest.mark.parametrize("model", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_models_20_heldout_samples(tmp_path: Path, model: Path) -> None:
    task = model.stem.rsplit("_", 1)[-1]
    art = _export(model, tmp_path / f"{model.stem}.loihi2", task)
    _check_artifact(art, task, n=20)


def test_artifact_netx_file_is_written(tmp_path: Path) -> None:
    """The exporter writes network.net.h5 through this backend's netx writer."""
    import h5py

    art = _export(_random_model(tmp_path, "spikingssm", "sdigits"), tmp_path / "a.loihi2", "sdigits")
    with h5py.File(art / "network.net.h5") as f:
        assert "layer" in f and f["layer/0/type"][()] == b"input"
        assert not bool(f.attrs["neurocompile_exact"])  # SSM graphs are not fully netx-expressible
