"""The wheel works outside the checkout: targets ship as package data and ``python -m neurocompile`` runs.

Reproduces the packaging defect (a non-editable install had no target files: ``targets`` printed an empty
table and ``export --target loihi2`` said "unknown target"). The test builds the wheel offline from a copy of
the sources (``pip wheel --no-deps --no-build-isolation``), installs it without dependencies into a temporary
folder that shadows the source tree, and runs the CLI from a folder outside the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from neurocompile.models import ModelConfig, SSMClassifier, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ["hala-point", "kapoho-point", "loihi1", "loihi2"]


def _site_packages() -> list[str]:
    import site

    return [p for p in site.getsitepackages() if Path(p).is_dir()]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "neurocompile", src / "neurocompile",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp / "dist"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                        "-q", "-w", str(dist), str(src)], capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    wheels = list(dist.glob("neurocompile-*.whl"))
    assert len(wheels) == 1, wheels
    with zipfile.ZipFile(wheels[0]) as z:
        shipped = sorted(Path(n).stem for n in z.namelist() if n.startswith("neurocompile/targets/")
                         and n.endswith(".toml"))
    assert shipped == SHIPPED, f"the wheel ships targets {shipped}"
    target = tmp / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target",
                        str(target), str(wheels[0])], capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), *_site_packages()])}
    return target, env


def _run(args: list[str], env: dict[str, str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, check=False)


@pytest.mark.slow
def test_wheel_lists_targets_from_outside_the_checkout(installed, tmp_path):
    target, env = installed
    r = _run([sys.executable, "-c", "import neurocompile; print(neurocompile.__file__)"], env, tmp_path)
    assert Path(r.stdout.strip()).is_relative_to(target), (r.stdout, r.stderr[-500:])
    r = _run([sys.executable, "-m", "neurocompile", "targets", "--json"], env, tmp_path)
    assert r.returncode == 0, r.stderr[-1000:]
    assert [t["name"] for t in json.loads(r.stdout)] == SHIPPED
    script = target / "bin" / "neurocompile"
    if script.exists():  # the console script pip wrote for this interpreter
        r = _run([sys.executable, str(script), "targets"], env, tmp_path)
        assert r.returncode == 0 and "loihi2" in r.stdout, r.stderr[-1000:]


@pytest.mark.slow
def test_wheel_exports_from_outside_the_checkout(installed, tmp_path):
    _, env = installed
    torch.manual_seed(0)
    model = SSMClassifier(ModelConfig(family="spikingssm", d_model=8, d_state=4, n_layers=1)).eval()
    save_checkpoint(model, tmp_path / "m.pt", metrics={"task": "sdigits"})
    r = _run([sys.executable, "-m", "neurocompile", "export", "m.pt", "--target", "loihi2", "-o", "m.loihi2",
              "--allow-precision-loss"], env, tmp_path)
    assert r.returncode == 0, (r.stdout[-1000:], r.stderr[-2000:])
    manifest = json.loads((tmp_path / "m.loihi2" / "manifest.json").read_text())
    assert manifest["target"]["name"] == "loihi2"
    assert not (ROOT / "m.loihi2").exists()
