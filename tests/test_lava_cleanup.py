"""The Lava backend cleans up after itself (errors, Ctrl-C) and fails clearly when Lava is missing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from neurocompile.backends.lava import lava_available
from neurocompile.errors import BackendError
from neurocompile.ir import hw
from neurocompile.ir.graph import Graph


def needs_lava(test):
    """Marks a test that runs Lava (select with ``-m lava``); skips it when lava-nc 0.10.0 does not import."""
    return pytest.mark.lava(pytest.mark.skipif(not lava_available(), reason="lava-nc 0.10.0 not importable")(test))
ROOT = Path(__file__).resolve().parents[1]

# A long run (its workers print nothing); the script prints its Lava child pids once they run.
LONG_RUN = textwrap.dedent("""
    import multiprocessing as mp, signal, sys, threading, time
    # as a shell starts a command: Ctrl-C raises KeyboardInterrupt, whatever the test runner's worker inherited
    print("INHERITED", signal.getsignal(signal.SIGINT), sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])),
          file=sys.stderr, flush=True)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
    import numpy as np
    from neurocompile.ir import hw
    from neurocompile.ir.graph import Graph
    from neurocompile.backends import lava as nl

    g = Graph("long")
    g.add("x", hw.QInput(size=3, out_scale=0.1, out_bits=12)); g.inputs = ["x"]
    g.add("d", hw.QDense(weight=np.ones((3, 3), np.int64), bias=np.zeros(3, np.int64), shift=np.zeros(3, np.int64)), "x")
    g.add("lif", hw.QLIF(vth=np.full(3, 5, np.int64)), "d"); g.outputs = ["lif"]

    def report():
        while len(mp.active_children()) < 3:
            time.sleep(0.05)
        time.sleep(0.5)
        print("CHILDREN", *[c.pid for c in mp.active_children()], flush=True)

    threading.Thread(target=report, daemon=True).start()
    try:
        nl.run(nl.load(g), np.ones((1, 200000, 3)))
    except KeyboardInterrupt:
        print("INTERRUPTED", len(mp.active_children()), flush=True)
        sys.exit(130)
    print("FINISHED", flush=True)
""")


def _session_members(sid: int) -> list[int]:
    """Live (non-zombie) processes of session ``sid``."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        state, session = fields[0], int(fields[3])
        if session == sid and state != "Z":
            out.append(int(d.name))
    return out


@needs_lava
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
@pytest.mark.parametrize("whole_group", [True, False])
def test_ctrl_c_leaves_no_process_behind(whole_group: bool) -> None:
    """SIGINT to the whole process group (a terminal's Ctrl-C) or to the host process only."""
    proc = subprocess.Popen([sys.executable, "-c", LONG_RUN], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        line = ""
        deadline = time.monotonic() + 120
        while not line.startswith("CHILDREN") and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        assert line.startswith("CHILDREN"), f"run did not start: {line!r} {proc.stderr.read()[-2000:]}"
        children = [int(p) for p in line.split()[1:]]
        assert children
        if whole_group:
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, f"rc={proc.returncode} out={out!r} err={err[-3000:]}"
    assert "INTERRUPTED 0" in out, out
    assert "leaked" not in err, err[-2000:]  # multiprocessing's resource tracker: no shared memory left behind
    deadline = time.monotonic() + 20
    while _session_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _session_members(proc.pid) == [], "processes left behind after Ctrl-C"
    assert not any(Path(f"/proc/{p}").exists() and "Z" not in Path(f"/proc/{p}/stat").read_text().split(")")[-1][:3]
                   for p in children)


@needs_lava
def test_error_in_a_lava_process_is_reported_and_cleaned_up() -> None:
    import multiprocessing as mp

    from neurocompile.backends import lava as nl

    g = Graph("bad")
    g.add("tok", hw.QInput(size=1, tokens=True, vocab=3))
    g.inputs = ["tok"]
    g.add("emb", hw.QEmbedding(table=np.arange(6, dtype=np.int64).reshape(3, 2)), "tok")
    g.outputs = ["emb"]
    with pytest.raises(BackendError, match="IndexError"):
        nl.run(nl.load(g), np.array([[0, 1, 2, 7, 1]]))  # token 7 is outside the table
    assert mp.active_children() == []


def test_missing_lava_gives_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulated ImportError: a BackendError naming lava-nc 0.10.0 and Python 3.10; the rest keeps working."""
    import builtins

    from neurocompile.backends import lava as nl
    from neurocompile.backends.lava import _require

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "lava" or name.startswith("lava."):
            raise ImportError(f"No module named '{name}'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.setattr(_require, "_checked", False)
    g = nl.from_lava_dense_lif(np.ones((2, 3), np.int64), vth=1)  # conversion needs no Lava
    with pytest.raises(BackendError) as info:
        nl.load(g)
    msg = str(info.value)
    assert "lava-nc 0.10.0 is needed for --backend lava; it imports only on Python 3.10" in msg
    assert "ImportError" in msg
    with pytest.raises(BackendError):
        nl.run(g, np.zeros((1, 2, 3)))
    assert nl.lava_available() is False


def test_package_imports_without_lava() -> None:
    """``import neurocompile.backends.lava`` works when Lava cannot be imported at all."""
    code = ("import sys; sys.modules['lava'] = None\n"
            "import neurocompile.backends.lava as nl\n"
            "from neurocompile.errors import BackendError\n"
            "import numpy as np\n"
            "g = nl.from_lava_dense_lif(np.ones((2, 3), np.int64))\n"
            "try:\n    nl.load(g)\nexcept BackendError as e:\n    print('ERR', e)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ERR lava-nc 0.10.0 is needed for --backend lava")


def test_ctrl_c_during_start_up_is_raised_after_it() -> None:
    """A Ctrl-C while Lava forks its workers is held, not lost: it is raised when the start-up block ends."""
    import os
    import signal

    from neurocompile.backends.lava.runtime import _Interrupts

    reached = False
    with pytest.raises(KeyboardInterrupt):
        with _Interrupts(reraise=True):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler runs between byte codes: the block must survive it
            reached = True
    assert reached
    with _Interrupts():  # shutdown's form never raises
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
