"""Bad input and compiler bugs are different errors: NeurocompileError (exit 2, one line) for what the user can fix,
InternalError (exit 3, one line naming the pass, the traceback only with NEUROCOMPILE_DEBUG=1) for a broken
invariant such as a graph that fails verification after a pass."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from neurocompile.cli import DEBUG_ENV, EXIT_BUG, EXIT_USER, main
from neurocompile.errors import InternalError, IRError, NeurocompileError
from neurocompile.ir import nodes as fl
from neurocompile.ir.graph import Graph
from neurocompile.passes import fold, pipeline


def small_graph() -> Graph:
    import numpy as np

    g = Graph("small")
    g.add("input", fl.Input(size=2))
    g.add("dec", fl.Affine(weight=np.ones((3, 2), np.float32), bias=np.zeros(3, np.float32)), "input")
    g.inputs, g.outputs = ["input"], ["dec"]
    return g


def drop_outputs(graph: Graph, ctx: object) -> Graph:
    """A broken pass: its graph names an output that does not exist."""
    g = graph.copy()
    g.outputs = ["nowhere"]
    return g


def test_internal_error_is_not_a_user_error():
    assert not issubclass(InternalError, NeurocompileError)
    e = InternalError("state width lost", stage="quantize")
    assert e.stage == "quantize" and "after pass 'quantize'" in str(e) and "neurocompile bug" in str(e)


def test_verification_failure_after_a_pass_is_an_internal_error_naming_it(monkeypatch):
    monkeypatch.setattr(fold, "run", drop_outputs)
    with pytest.raises(InternalError) as exc:
        pipeline.lower_graph(small_graph())
    assert exc.value.stage == "fold" and "after pass 'fold'" in str(exc.value)
    assert exc.value.violations and "nowhere" in str(exc.value)


def test_a_bad_input_graph_is_the_users_error():
    g = small_graph()
    g.outputs = ["nowhere"]
    with pytest.raises(IRError, match="on the input graph") as exc:
        pipeline.lower_graph(g)
    assert exc.value.violations


def test_cli_reports_a_bug_in_one_line_with_its_own_exit_status(tiny_model_file, tmp_path, monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    monkeypatch.setattr(fold, "run", drop_outputs)
    r = CliRunner().invoke(main, ["export", str(tiny_model_file), "--target", "loihi2", "-o", str(tmp_path / "a")])
    assert r.exit_code == EXIT_BUG == 3, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    assert "after pass 'fold'" in lines[0] and "neurocompile bug" in lines[0] and DEBUG_ENV in lines[0]
    assert not (tmp_path / "a").exists()


def test_cli_shows_the_bugs_traceback_when_asked(tiny_model_file, tmp_path, monkeypatch):
    monkeypatch.setenv(DEBUG_ENV, "1")
    monkeypatch.setattr(fold, "run", drop_outputs)
    r = CliRunner().invoke(main, ["export", str(tiny_model_file), "--target", "loihi2", "-o", str(tmp_path / "a")])
    assert isinstance(r.exception, InternalError) and r.exception.stage == "fold"
    assert r.exit_code not in (0, EXIT_USER)


def test_cli_user_error_stays_exit_two(tmp_path):
    r = CliRunner().invoke(main, ["export", str(tmp_path / "missing.pt"), "--target", "loihi2"])
    assert r.exit_code == EXIT_USER == 2, r.output
    assert len(r.output.strip().splitlines()) == 1 and r.output.startswith("error:") and "bug" not in r.output
