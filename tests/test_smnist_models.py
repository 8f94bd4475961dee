"""The shipped sequential-MNIST checkpoints: recorded metrics, reproducible float accuracy, Lava vs simulator.

The full-length checks (3 test digits x 784 steps on Lava for every model, the whole 1,000-digit test split in
the simulator) live in benchmarks/smnist_lava.py and the CLI; here Lava runs the first 100 steps of 2 digits of
one model (Lava needs milliseconds per step) and the float accuracy is re-measured for the priority model.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

pytest.importorskip("mlxtend")

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = ROOT / "examples" / "checkpoints"
FAMILIES = ("spikingssm", "binary_s4d", "gsu", "spike_ssm")
SHIPPED = [(f, "smnist") for f in FAMILIES] + [("binary_s4d", "psmnist")]


def _metrics(family: str, task: str) -> dict:
    return json.loads((CHECKPOINTS / f"{family}_{task}.metrics.json").read_text())


@pytest.mark.parametrize(("family", "task"), SHIPPED, ids=[f"{f}_{t}" for f, t in SHIPPED])
def test_checkpoint_ships_small_with_recorded_command_and_metrics(family: str, task: str) -> None:
    from neurocompile.models import load_checkpoint

    path = CHECKPOINTS / f"{family}_{task}.pt"
    assert path.is_file(), f"missing {path}"
    assert path.stat().st_size < 400_000  # a few hundred KB at most
    m = _metrics(family, task)
    assert m["family"] == family and m["task"] == task
    assert (m["n_train"], m["n_test"]) == (4000, 1000)
    assert 0.1 < m["test_accuracy"] <= 1.0  # above chance (10 balanced classes)
    model, ckpt = load_checkpoint(path)
    assert ckpt["metrics"]["test_accuracy"] == m["test_accuracy"]
    assert ckpt["config"] == m["config"] and model.num_parameters() == m["n_params"]
    # every stage's command is recorded: a fine-tuned model names the shipped checkpoint it started from, and
    # that checkpoint's own recorded command and accuracy match the file
    stage = m
    while "init" in stage:
        assert stage["command"].startswith(("examples/train.py ", "examples/qat.py ")), stage["command"]
        assert f"--init {stage['init']['path']}" in stage["command"]
        init_path = ROOT / stage["init"]["path"]
        assert init_path.is_file() and init_path.stat().st_size < 400_000
        init_metrics = json.loads(init_path.with_suffix(".metrics.json").read_text())
        assert init_metrics["command"] == stage["init"]["command"]
        assert init_metrics["test_accuracy"] == stage["init"]["test_accuracy"]
        stage = init_metrics
    assert stage["command"].startswith(f"examples/train.py --family {family} --task {task} ")


@pytest.mark.parametrize(("family", "task"), SHIPPED, ids=[f"{f}_{t}" for f, t in SHIPPED])
def test_recorded_integer_accuracy_is_within_one_point_of_float(family: str, task: str) -> None:
    """The loihi2 integer accuracy recorded for each shipped model (measured with export + simulate/report on the
    1,000 test digits; re-measure with benchmarks/smnist_lava.py --accuracy 1000) belongs to this checkpoint (its
    float accuracy is the checkpoint's) and meets issue 17's criterion. A subset is too small to test it here:
    on the first 200 digits gsu_smnist's integer model is 2.0 points below float (84.5 vs 86.5 %)."""
    m = _metrics(family, task)
    dep = m["loihi2"]
    assert dep["samples"] == m["n_test"] == 1000
    assert dep["float_accuracy"] == pytest.approx(m["test_accuracy"], abs=1e-9)
    assert abs(dep["integer_accuracy"] - dep["float_accuracy"]) <= 0.01 + 1e-9


@pytest.mark.slow
def test_spikingssm_float_accuracy_reproduces_on_the_whole_test_split() -> None:
    import torch

    from neurocompile.models import load_checkpoint
    from neurocompile.models.data import load_smnist
    from neurocompile.models.training import evaluate

    model, ckpt = load_checkpoint(CHECKPOINTS / "spikingssm_smnist.pt")
    x, y = load_smnist("test")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        acc = evaluate(model, x, y, exact=True)
    finally:
        torch.set_num_threads(threads)
    assert acc == pytest.approx(ckpt["metrics"]["test_accuracy"], abs=1e-9)


@pytest.mark.lava
@pytest.mark.slow
def test_lava_matches_simulator_on_first_100_steps(tmp_path: Path) -> None:
    from neurocompile.backends.lava import lava_available

    if not lava_available():
        pytest.skip("lava-nc 0.10.0 not importable")
    from neurocompile import api
    from neurocompile.backends import lava as nl
    from neurocompile.backends.lava.compare import compare, simulate_reference
    from neurocompile.datasets import load_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        art = api.export(CHECKPOINTS / "binary_s4d_smnist.pt", "loihi2", out=tmp_path / "m.loihi2", force=True,
                         console=False, calibration="smnist", calibration_samples=16)
    x = load_dataset("smnist", split="test").x[:2, :100]  # a 0 and a 1 (the test split is interleaved)
    net = nl.load(art, batch=2)
    res = nl.run(net, x)
    cmp = compare(net.graph, res, simulate_reference(net.graph, x))
    assert cmp.equal, str(cmp)
    assert cmp.values > 2 * 100 * 32 * 8  # every node of every step was compared, not just the logits


def _example(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"nc_example_{name}", ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_two_stage_recipes_record_their_start_and_keep_its_architecture(tmp_path: Path) -> None:
    """The recipes of spike_ssm_smnist (train.py --init ... --neuron-mode exact) and gsu_smnist (qat.py
    --zero-skip), on tiny sdigits models: the second stage starts from the first stage's weights and architecture
    and records where it started."""
    import torch

    from neurocompile.models import load_checkpoint

    train = _example("train")
    first = tmp_path / "pmbc.pt"
    train.main(["--family", "spike_ssm", "--task", "sdigits", "--epochs", "1", "--d-model", "8", "--d-state", "4",
                "--layers", "1", "--out", str(first)])
    second = tmp_path / "exact.pt"
    m = train.main(["--family", "spike_ssm", "--task", "sdigits", "--init", str(first), "--neuron-mode", "exact",
                    "--epochs", "1", "--d-model", "32", "--lr", "1e-2", "--out", str(second)])
    start, _ = load_checkpoint(first)
    tuned, ckpt = load_checkpoint(second)
    assert m["config"]["d_model"] == 8 and m["config"]["neuron_mode"] == "exact"  # the flags' 32 is ignored
    first_metrics = json.loads(first.with_suffix(".metrics.json").read_text())
    assert m["init"]["path"] == str(first) and m["init"]["command"] == first_metrics["command"]
    assert m["init"]["test_accuracy"] == first_metrics["test_accuracy"]
    assert ckpt["metrics"]["init"] == m["init"]
    moved = [k for k, v in tuned.state_dict().items() if not torch.equal(v, start.state_dict()[k])]
    assert moved  # it trained
    with pytest.raises(SystemExit):
        train.main(["--family", "gsu", "--task", "sdigits", "--init", str(first), "--epochs", "1",
                    "--out", str(tmp_path / "x.pt")])

    qat = _example("qat")
    out = tmp_path / "qat.pt"
    q = qat.main(["--init", str(second), "--task", "sdigits", "--out", str(out), "--epochs", "1", "--zero-skip"])
    model, ckpt = load_checkpoint(out)
    assert q["zero_skip"] and all(float(b.s4d.D.detach().abs().max()) == 0.0 for b in model.blocks)
    assert q["init"]["path"] == str(second) and q["init"]["init"] == m["init"]
    assert q["command"].startswith("examples/qat.py --init ") and ckpt["metrics"]["test_accuracy"] == q["test_accuracy"]
    assert q["qat"]["weight_bits"] == 8 and q["qat"]["target"] == "loihi2"
