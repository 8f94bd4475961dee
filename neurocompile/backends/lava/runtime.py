"""Lifecycle of a Lava runtime: start it without letting Ctrl-C reach its workers, notice dead workers
instead of blocking forever, and stop it for sure (gracefully, else terminate, else kill).

Lava 0.10.0 runs every Process in its own OS process (forked by ``multiprocessing``) plus a shared-memory
manager. The workers are forked while SIGINT is ignored, so a terminal's Ctrl-C (sent to the whole process
group) reaches only the host, which then stops them; :func:`shutdown` never leaves a child process behind.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

from neurocompile.errors import BackendError


class _Interrupts:
    """Hold SIGINT while Lava forks its workers (they inherit a handler that only takes note, so a Ctrl-C never
    kills a worker half-built) and remember a Ctrl-C that came meanwhile: with ``reraise`` it is raised as
    KeyboardInterrupt once the block ends, so a Ctrl-C during start-up is never lost."""

    def __init__(self, reraise: bool = False) -> None:
        self.old: Any = None
        self.hit = False
        self.reraise = reraise

    def _note(self, signum: int, frame: Any) -> None:
        self.hit = True

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            self.old = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._note)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)
        if self.hit and self.reraise and exc[0] is None:
            raise KeyboardInterrupt


def _actors(runtime: Any) -> list[Any]:
    mi = getattr(runtime, "_messaging_infrastructure", None)
    return list(getattr(mi, "actors", []) or [])


def _check_alive(runtime: Any, what: str) -> None:
    dead = [a for a in _actors(runtime) if a.exitcode is not None]
    if dead:
        detail = ""
        for a in dead:
            try:
                exc = a.exception
            except Exception:  # pragma: no cover - closed pipe
                exc = None
            if exc:
                detail = f": {exc[0]!r}"
                break
        raise BackendError(f"a Lava worker process ended while {what} (exit code {dead[0].exitcode}){detail}")


def _recv(port: Any, runtime: Any, stall_timeout_s: float, what: str) -> Any:
    """Receive one message from an external pipe, noticing dead workers instead of blocking forever."""
    from queue import Empty

    waited = 0.0
    queue = getattr(port, "_queue", None)
    while True:
        if port.probe():
            return port.recv()
        try:
            if queue is not None:
                queue.get(timeout=0.5, peek=True)
            else:  # pragma: no cover - other Lava versions
                time.sleep(0.001)
            continue
        except Empty:
            waited += 0.5
        _check_alive(runtime, what)
        if waited >= stall_timeout_s:
            raise BackendError(f"Lava made no progress for {stall_timeout_s:.0f} s while {what}")


def shutdown(runtime: Any, procs: list[Any] | None = None, graceful: bool = True, timeout_s: float = 20.0) -> None:
    """Stop a Lava runtime; if it does not stop within ``timeout_s`` (or ``graceful`` is False), terminate
    and then kill its worker processes. Never raises; leaves no child process behind."""
    if runtime is None:
        return
    with _Interrupts():
        done = False
        if graceful and getattr(runtime, "_is_started", False):
            t = threading.Thread(target=_quiet_stop, args=(runtime,), daemon=True)
            t.start()
            t.join(timeout_s)
            done = not t.is_alive() and not any(a.is_alive() for a in _actors(runtime) if _has_popen(a))
        if not done:
            _force_stop(runtime)
        for p in procs or []:
            try:
                p._runtime = None  # so Process.__del__ does not stop it again
            except Exception:  # pragma: no cover
                pass


def _has_popen(a: Any) -> bool:
    return getattr(a, "_popen", None) is not None


def _quiet_stop(runtime: Any) -> None:
    try:
        runtime.stop()
    except Exception:
        pass


def _force_stop(runtime: Any) -> None:
    import multiprocessing as mp

    actors = [a for a in _actors(runtime) if _has_popen(a)]
    for a in actors:
        try:
            if a.is_alive():
                a.terminate()
        except Exception:  # pragma: no cover
            pass
    deadline = time.monotonic() + 5.0
    for a in actors:
        try:
            mp.Process.join(a, max(0.0, deadline - time.monotonic()))
            if a.is_alive():
                a.kill()
                mp.Process.join(a, 5.0)
        except Exception:  # pragma: no cover
            pass
    mi = getattr(runtime, "_messaging_infrastructure", None)
    for stop in (getattr(getattr(mi, "_smm", None), "shutdown", None),
                 getattr(getattr(runtime, "_watchdog_manager", None), "stop", None)):
        if stop is not None:
            try:
                stop()
            except Exception:  # pragma: no cover - best effort: the process is going away
                pass
    runtime._is_started = False
    runtime._is_running = False
