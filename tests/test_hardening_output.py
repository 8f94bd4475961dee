"""Output safety: an export never destroys what it did not write, and file-system errors are one clear line.

Each test reproduces one defect found by trying the CLI as a hostile or unlucky user would: ``--force``
deleting a project folder, two exports to the same ``-o`` both reporting success, a full disk (simulated) in
the middle of writing, ``-o`` under a file or on a read-only mount, SIGKILL leaving hidden temporary folders,
a report interrupted between its JSON and HTML files.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from neurocompile import fileio
from neurocompile.artifact import (
    artifact_problem,
    load_artifact,
    lock_path,
    output_lock,
    write_artifact,
)
from neurocompile.cli import main
from neurocompile.errors import ArtifactError, NeurocompileError, OutputError
from neurocompile.ir.graph import Graph
from neurocompile.ir.nodes import Input
from neurocompile.target import load_target

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = {"model": {"name": "t"}, "input": {"size": 1, "tokens": False, "steps": 4},
            "options": {}}


def tiny_graph() -> Graph:
    g = Graph("t")
    g.add("input", Input(size=1))
    g.inputs, g.outputs = ["input"], ["input"]
    return g


def write(out: Path, **kw) -> Path:
    return write_artifact(out, tiny_graph(), None, dict(MANIFEST), target=load_target("loihi2"), **kw)


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def snapshot(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name != out.name)


# -- --force ---------------------------------------------------------------------------------------------------

def test_force_refuses_a_project_folder_that_merely_has_a_manifest(tmp_path):
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "main.py").write_text("print('precious')\n")
    (proj / "manifest.json").write_text(json.dumps({"name": "my app"}))
    before = snapshot(proj)
    with pytest.raises(ArtifactError, match="even with --force") as exc:
        write(proj, force=True)
    assert "\n" not in str(exc.value)
    assert snapshot(proj) == before


def test_force_refuses_an_artifact_with_foreign_or_modified_files(tmp_path):
    out = write(tmp_path / "a.loihi2")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ArtifactError, match="notes.txt"):
        write(out, force=True)
    (out / "notes.txt").unlink()
    (out / "int" / "graph.json").write_text("{}")
    with pytest.raises(ArtifactError, match="does not match its manifest hash"):
        write(out, force=True)
    assert (out / "int" / "graph.json").read_text() == "{}"


def test_force_replaces_an_intact_artifact_and_leaves_no_temporaries(tmp_path):
    out = write(tmp_path / "a.loihi2")
    assert artifact_problem(out) is None
    write(out, force=True, extra_json={"checks.json": []})
    assert (out / "checks.json").exists() and artifact_problem(out) is None
    assert siblings(out) == []


def test_without_force_an_existing_output_is_refused(tmp_path):
    out = write(tmp_path / "a.loihi2")
    with pytest.raises(ArtifactError, match="already exists"):
        write(out)


# -- concurrency -----------------------------------------------------------------------------------------------

_CHILD = """
import sys, time
sys.path.insert(0, {root!r})
sys.path.insert(0, {tests!r})
from pathlib import Path
from test_hardening_output import write
from neurocompile.errors import NeurocompileError
out = Path(sys.argv[1])
while time.time() < float(sys.argv[2]):
    time.sleep(0.005)
try:
    write(out, writers=[lambda d: time.sleep(float(sys.argv[3]))])
    print("OK")
except NeurocompileError as e:
    print("ERR", e)
"""


def _child(out: Path, start: float, hold: float) -> subprocess.Popen:
    code = _CHILD.format(root=str(ROOT), tests=str(ROOT / "tests"))
    return subprocess.Popen([sys.executable, "-c", code, str(out), str(start), str(hold)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_two_concurrent_exports_cannot_both_succeed(tmp_path):
    out = tmp_path / "same.loihi2"
    start = time.time() + 8  # both children import first, then start writing together
    procs = [_child(out, start, 1.5) for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    lines = [r[0].strip() for r in results]
    assert sorted(line.split(" ")[0] for line in lines) == ["ERR", "OK"], (lines, [r[1][-500:] for r in results])
    err = next(line for line in lines if line.startswith("ERR"))
    assert "another neurocompile process" in err or "already exists" in err, err
    assert load_artifact(out).target == "loihi2"
    assert siblings(out) == []


def test_a_held_lock_makes_a_second_writer_fail_at_once(tmp_path):
    out = tmp_path / "x.loihi2"
    with output_lock(out):
        assert lock_path(out).exists()
        p = _child(out, 0, 0)
        stdout, stderr = p.communicate(timeout=120)
        assert stdout.startswith("ERR") and "being written by another neurocompile process" in stdout, stderr[-800:]
    assert not out.exists() and not lock_path(out).exists()


# -- temporaries -----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_sigkill_leftovers_are_cleaned_by_the_next_export(tmp_path):
    out = tmp_path / "k.loihi2"
    p = _child(out, 0, 120)
    deadline = time.time() + 90
    while time.time() < deadline and not any(n.startswith(".k.loihi2.nc-tmp-") for n in siblings(out)):
        time.sleep(0.1)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    left = [n for n in siblings(out) if n.startswith(".k.loihi2.nc-tmp-")]
    assert left, "the killed writer left no temporary folder (the test did not reproduce the defect)"
    write(out)
    assert siblings(out) == []


def test_old_style_temporaries_are_cleaned_but_foreign_folders_kept(tmp_path):
    out = tmp_path / "m.loihi2"
    (tmp_path / ".m.loihi2.ab12cd34" / "int").mkdir(parents=True)  # earlier versions' mkdtemp naming
    (tmp_path / ".m.loihi2.nc-old-zz99yy88").mkdir()
    (tmp_path / ".m.loihi2.notes123").mkdir()
    (tmp_path / ".m.loihi2.notes123" / "diary.txt").write_text("keep")
    write(out)
    assert siblings(out) == [".m.loihi2.notes123"]


# -- file-system errors ----------------------------------------------------------------------------------------

def test_output_under_a_file_fails_before_any_work(tmp_path):
    (tmp_path / "file").write_text("x")
    r = run("export", "no-such-model.pt", "--target", "loihi2", "-o", tmp_path / "file" / "out")
    assert r.exit_code == 2 and "is a file, not a folder" in r.output and "Traceback" not in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1


def test_read_only_mount_is_one_line_before_any_work(tmp_path, monkeypatch):
    def erofs(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(fileio.tempfile, "mkdtemp", erofs)
    r = run("export", "no-such-model.pt", "--target", "loihi2", "-o", tmp_path / "ro" / "out")
    assert r.exit_code == 2 and "read-only" in r.output and "EROFS" in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1


def test_full_disk_is_refused_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(fileio.shutil, "disk_usage", lambda p: _usage(1 << 20))
    r = run("export", "no-such-model.pt", "--target", "loihi2", "-o", tmp_path / "out")
    assert r.exit_code == 2 and "MiB free" in r.output, r.output


def _usage(free: int):
    import shutil

    return shutil._ntuple_diskusage(1 << 40, (1 << 40) - free, free)


def test_hdf5_writer_never_runs_on_a_nearly_full_disk(tmp_path, monkeypatch):
    """A full disk segfaulted the HDF5 writer: the space for it is checked first and the writer not called."""
    calls = []
    monkeypatch.setattr(fileio.shutil, "disk_usage", lambda p: _usage(fileio.MIN_FREE_BYTES + 1))
    with pytest.raises(OutputError, match="MiB free") as exc:
        write(tmp_path / "h.loihi2", writers=[lambda d: calls.append(d)])
    assert calls == [] and "\n" not in str(exc.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_enospc_while_writing_keeps_the_previous_artifact(tmp_path):
    out = write(tmp_path / "e.loihi2")
    before = snapshot(out)

    def full(d: Path) -> None:
        (d / "network.net.h5").write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError, match="disk is full") as exc:
        write(out, force=True, writers=[full])
    assert "ENOSPC" in str(exc.value) and "nothing was written" in str(exc.value)
    assert snapshot(out) == before and siblings(out) == []


def test_json_pointing_at_a_folder_is_one_line(tmp_path):
    out = write(tmp_path / "a.loihi2")
    r = run("simulate", out, "--json", tmp_path)
    assert r.exit_code == 2 and "it is a folder" in r.output and "Traceback" not in r.output, r.output


def test_atomic_write_files_is_all_or_nothing(tmp_path):
    a, b = tmp_path / "r.json", tmp_path / "r.html"
    a.write_text("old json")
    b.write_text("old html")

    def boom(tmp: Path) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fileio.atomic_write_files({a: lambda t: t.write_text("new json"), b: boom})
    assert a.read_text() == "old json" and b.read_text() == "old html"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r.json"]
    fileio.atomic_write_files({a: lambda t: t.write_text("new json"), b: lambda t: t.write_text("new html")})
    assert a.read_text() == "new json" and b.read_text() == "new html"


def test_second_rename_failing_restores_the_first_file(tmp_path, monkeypatch):
    a, b = tmp_path / "r.json", tmp_path / "r.html"
    a.write_text("old json")
    real = os.replace

    def flaky(src, dst):
        if Path(dst) == b:
            raise OSError(errno.EIO, "I/O error")
        return real(src, dst)

    monkeypatch.setattr(fileio.os, "replace", flaky)
    with pytest.raises(OutputError, match="r.html"):
        fileio.atomic_write_files({a: lambda t: t.write_text("new"), b: lambda t: t.write_text("new")})
    assert a.read_text() == "old json" and not b.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_every_output_error_is_a_neurocompile_error():
    assert issubclass(OutputError, NeurocompileError)


def test_stale_temporary_files_of_a_killed_report_are_cleaned(tmp_path):
    out = tmp_path / "r.json"
    stale, fresh = tmp_path / ".r.json.abc123.nc-tmp", tmp_path / ".r.json.def456.nc-tmp"
    stale.write_text("left by a killed writer")
    fresh.write_text("another writer's live temporary")
    old = time.time() - 2 * fileio.STALE_AFTER_S
    os.utime(stale, (old, old))
    fileio.atomic_write_text(out, "{}")
    assert out.read_text() == "{}" and not stale.exists() and fresh.exists()
