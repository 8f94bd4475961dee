"""Fixtures shared by several test files: the bundled checkpoint's artifact, a tiny model and its artifact, and
edited copies of a shipped target file.

The artifacts are session-scoped (one export per pytest-xdist worker); tests that change one copy it first.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUNDLED_MODEL = ROOT / "examples" / "checkpoints" / "spikingssm_sdigits.pt"


@pytest.fixture(scope="session")
def bundled_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled checkpoint exported for loihi2 with the CLI's defaults (read-only: copy before changing)."""
    from click.testing import CliRunner

    from neurocompile.cli import main

    if not BUNDLED_MODEL.exists():
        pytest.skip("bundled checkpoint not trained yet")
    out = tmp_path_factory.mktemp("export") / "spikingssm_sdigits.loihi2"
    r = CliRunner().invoke(main, ["export", str(BUNDLED_MODEL), "--target", "loihi2", "-o", str(out)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-layer spiking SSM (d_model 8, d_state 4, seed 0) trained on nothing, saved as a checkpoint that
    names sdigits as its task."""
    import torch

    from neurocompile.models import ModelConfig, SSMClassifier, save_checkpoint

    p = tmp_path_factory.mktemp("tiny") / "m.pt"
    torch.manual_seed(0)
    model = SSMClassifier(ModelConfig(family="spikingssm", d_model=8, d_state=4, n_layers=1)).eval()
    save_checkpoint(model, p, metrics={"task": "sdigits"})
    return p


@pytest.fixture(scope="session")
def tiny_artifact(tiny_model_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`tiny_model_file` exported for loihi2 on 32 calibration samples (read-only: copy before changing)."""
    from neurocompile import api

    out = tmp_path_factory.mktemp("tiny_art") / "m.loihi2"
    return api.export(tiny_model_file, "loihi2", out=out, calibration_samples=32, allow_precision_loss=True,
                      console=False)


def edit_target_text(text: str, name: str | None = None, **edits: float) -> str:
    """A target file's text with ``[target] name`` set to ``name`` and each ``section__key=value`` constant's value
    replaced (double underscore: ``energy__synaptic_op_pj=50.0``). Fails when a key is not found once."""
    lines = text.splitlines(keepends=True)
    todo: dict[str, object] = dict(edits)
    if name is not None:
        todo["target__name"] = name
    section = ""
    for i, line in enumerate(lines):
        head = re.match(r"^\[([a-z_]+)\]", line)
        if head:
            section = head.group(1)
            continue
        for key, value in list(todo.items()):
            sec, field = key.split("__")
            if sec != section:
                continue
            if field == "name" and sec == "target" and re.match(r"^name\s*=", line):
                lines[i] = f'name = "{value}"\n'
            else:
                new, n = re.subn(rf"^{field} = \{{ value = [^,]+,", f"{field} = {{ value = {value},", line)
                if not n:
                    continue
                lines[i] = new
            del todo[key]
    assert not todo, f"target keys not found: {sorted(todo)}"
    return "".join(lines)


@pytest.fixture
def target_file(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``target_file(base='loihi2', name=None, **edits)`` writes an edited copy of a shipped target to
    ``tmp_path`` (see :func:`edit_target_text`) and returns its path."""
    from neurocompile.target import targets_dir

    def make(base: str = "loihi2", name: str | None = None, **edits: float) -> Path:
        text = edit_target_text((targets_dir() / f"{base}.toml").read_text(), name=name, **edits)
        p = tmp_path / f"target{len(list(tmp_path.glob('target*.toml')))}.toml"  # numbered: a test may write several
        p.write_text(text)
        return p

    return make
