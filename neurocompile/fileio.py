"""File helpers shared by artifacts, reports and loaders: content hashes, atomic writes, output checks.

Every file-system failure on an output becomes one :class:`~neurocompile.errors.OutputError` line naming the
path, what is wrong (read-only, not a folder, disk full, permission) and what to do. :func:`check_output_path`
runs the checks that can be made before any long work (compiling, simulating).
"""

from __future__ import annotations

import errno
import glob
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from neurocompile.errors import OutputError

#: outputs need at least this much free space on their file system before long work starts (bytes)
MIN_FREE_BYTES = 16 << 20

_ADVICE = {
    errno.ENOSPC: "the disk is full: free some space or write elsewhere",
    errno.EDQUOT: "the disk quota is exceeded: free some space or write elsewhere",
    errno.EROFS: "the file system is read-only: choose a writable -o / output path",
    errno.EACCES: "permission denied: choose a folder you can write to",
    errno.EPERM: "permission denied: choose a folder you can write to",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder: give a file name",
    errno.ENAMETOOLONG: "the name is too long",
}


def sha256(path: str | Path) -> str:
    """SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def os_error(exc: OSError, path: str | Path, what: str = "cannot write") -> OutputError:
    """One clear line for an OSError on ``path``: what failed, why (errno name) and what to do."""
    why = _ADVICE.get(exc.errno or 0, exc.strerror or str(exc))
    code = errno.errorcode.get(exc.errno or 0, "")
    return OutputError(f"{what} '{path}': {why}" + (f" ({code})" if code else "") + "; nothing was written")


def free_bytes(path: str | Path) -> int:
    """Free bytes on the file system holding ``path`` (an existing folder)."""
    return int(shutil.disk_usage(path).free)


def ensure_free_space(folder: str | Path, need: int, what: str) -> None:
    """Raise OutputError when the file system of ``folder`` has fewer than ``need`` bytes free."""
    try:
        free = free_bytes(folder)
    except OSError:
        return  # the write itself reports a failure
    if free < need:
        raise OutputError(f"cannot write {what}: only {free / 2**20:.1f} MiB free on the disk holding '{folder}', "
                          f"{need / 2**20:.1f} MiB needed; free some space or write elsewhere")


def _existing_ancestor(path: Path) -> Path:
    """The nearest existing ancestor of ``path``; OutputError when a component on the way is a file."""
    p = path.parent if str(path.parent) else Path(".")
    probe = p
    while not probe.exists():
        if probe.is_symlink():  # dangling link: mkdir would fail
            raise OutputError(f"cannot write '{path}': '{probe}' is a broken link")
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"cannot write '{path}': '{probe}' is a file, not a folder; choose another output path")
    return probe


def check_output_path(path: str | Path, *, folder: bool = False, need: int = MIN_FREE_BYTES) -> None:
    """Checks before long work: ``path``'s folder can be created and written, enough space is free, and
    ``path`` is not the wrong kind (a folder where a file is written, or the reverse).

    ``folder``: the output is a directory (an artifact). Whether an existing output may be replaced is decided
    by the writer (``--force``).
    """
    path = Path(path)
    if path.is_dir() and not folder:
        raise OutputError(f"cannot write '{path}': it is a folder; give a file name")
    if path.exists() and not path.is_dir() and folder:
        raise OutputError(f"cannot write '{path}': a file of that name exists (an artifact is a folder); "
                          "choose another -o")
    base = _existing_ancestor(path)
    try:  # a real probe: access() does not see read-only mounts or full disks reliably
        probe = tempfile.mkdtemp(prefix=".neurocompile-probe-", dir=base)
        os.rmdir(probe)
    except OSError as exc:
        raise os_error(exc, base, "cannot write into") from None
    ensure_free_space(base, need, f"'{path}'")


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically: a temporary file in the same folder, then a rename."""
    data = text.encode("utf-8")
    return atomic_write_files({Path(path): lambda tmp: tmp.write_bytes(data)})[0]


def atomic_write_files(writers: dict[Path, Callable[[Path], object]]) -> list[Path]:
    """Write several files as a set: each writer fills a temporary sibling; only when all succeeded are they
    renamed into place. A failing rename puts back the files already replaced, so either every file is new
    or none is. OSError becomes OutputError naming the file."""
    items = [(Path(p), w) for p, w in writers.items()]
    for p, _ in items:
        if p.is_dir():
            raise OutputError(f"cannot write '{p}': it is a folder; give a file name")
    for p, _ in items:
        _clean_stale_files(p)
    tmps: list[Path] = []
    done: list[tuple[Path, Path | None]] = []  # (path, backup of the previous file)
    try:
        for p, write in items:
            try:
                _existing_ancestor(p)
                p.parent.mkdir(parents=True, exist_ok=True)
                fd, name = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".nc-tmp", dir=p.parent)
                os.close(fd)
                tmps.append(Path(name))
                write(Path(name))
                with open(name, "rb+") as f:
                    os.fsync(f.fileno())
                os.chmod(name, _file_mode(p))  # mkstemp creates 0600; give the mode a plain open() would
            except OSError as exc:
                raise os_error(exc, p) from None
        for (p, _), tmp in zip(items, tmps, strict=True):
            backup = None
            try:
                if p.exists():
                    backup = p.with_name(f".{p.name}.nc-old")
                    os.replace(p, backup)
                os.replace(tmp, p)
            except OSError as exc:
                if backup is not None and backup.exists() and not p.exists():
                    os.replace(backup, p)
                raise os_error(exc, p) from None
            done.append((p, backup))
    except BaseException:
        for p, backup in reversed(done):  # put the set back as it was
            try:
                if backup is not None:
                    os.replace(backup, p)
                else:
                    p.unlink()
            except OSError:
                pass
        for t in tmps:
            t.unlink(missing_ok=True)
        raise
    for _, backup in done:
        if backup is not None:
            backup.unlink(missing_ok=True)
    return [p for p, _ in items]


#: a temporary file of ours older than this was left by a killed writer (seconds)
STALE_AFTER_S = 3600


def _clean_stale_files(path: Path) -> None:
    """Remove ``.NAME.*.nc-tmp`` / ``.NAME.nc-old`` files a killed writer of ``path`` left (older than an hour,
    so a concurrent writer's live temporary is never touched)."""
    try:
        now = time.time()
        for t in path.parent.glob(f".{glob.escape(path.name)}.*"):
            if (t.name.endswith(".nc-tmp") or t.name == f".{path.name}.nc-old") and t.is_file() \
                    and now - t.stat().st_mtime > STALE_AFTER_S:
                t.unlink()
    except OSError:
        pass  # best effort: a leftover never blocks a write


def _file_mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o777  # keep an existing file's mode
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
