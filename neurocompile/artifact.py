"""Deployable artifacts: a directory holding the integer graph, the float graph it came from, and a manifest.

Layout::

    <name>.<target>/
      manifest.json        format version, neurocompile version, target name, input shape, options, file hashes
      target.json          the target it was compiled for, every key with unit and source (simulate, report,
                           check and the Lava backend read it: the .toml file need not exist any more)
      placement.json       the fit report and the placement (cores, tiles, each node's cores)
      int/graph.json       the integer (hardware) graph ...
      int/weights.npz      ... and its arrays
      float/graph.json     the float graph after lowering (for accuracy comparisons and the quant report)
      float/weights.npz
      quant_report.json    per-node SQNR, saturations, dead/saturated neurons (measured at export)
      checks.json          design-rule results (warnings; errors block export)
      network.net.h5       the layers lava-dl's netx can express (when the Lava backend is installed)

Artifacts are deterministic: the same inputs give byte-identical files (no timestamps, sorted keys,
fixed zip dates). They are written into a temporary sibling directory and renamed into place, so a failed
export never leaves a half-written artifact behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurocompile import __version__
from neurocompile.artifact_schema import FORMAT, FORMAT_VERSION, MANIFEST, TARGET_FILE, safe_member
from neurocompile.artifact_schema import read_manifest as _read_manifest
from neurocompile.artifact_schema import read_target as _read_target
from neurocompile.artifact_schema import verify_files as _verify_files
from neurocompile.errors import ArtifactError, NeurocompileError
from neurocompile.fileio import MIN_FREE_BYTES, check_output_path, ensure_free_space, os_error, sha256
from neurocompile.ir.graph import Graph
from neurocompile.target import Target


def dumps(obj: Any) -> str:
    """Deterministic JSON text (sorted keys, 2-space indent, trailing newline)."""
    return json.dumps(obj, sort_keys=True, indent=2, allow_nan=False) + "\n"


@dataclass
class Artifact:
    """A loaded artifact: its directory, manifest, graphs and the target it was compiled for (``target_spec``,
    read from its own snapshot, never reloaded by name)."""

    path: Path
    manifest: dict[str, Any]
    int_graph: Graph
    float_graph: Graph | None
    target_spec: Target

    @property
    def target(self) -> str:
        """The name of the target the artifact was compiled for."""
        return self.target_spec.name

    def read_json(self, name: str) -> Any:
        """A JSON file of the artifact (None when absent); ArtifactError when it cannot be parsed."""
        p = safe_member(self.path, name)
        if not p.exists():
            return None
        try:
            return json.loads(p.read_bytes().decode("utf-8"))
        except (OSError, ValueError, RecursionError) as e:
            raise ArtifactError(f"{p}: cannot be read as JSON ({' '.join(str(e).split())[:120]}); "
                                "re-export the model") from None


def lock_path(out: Path) -> Path:
    """The lock file of destination ``out``: a hidden sibling, so it survives replacing ``out``."""
    return out.parent / f".{out.name}.nc-lock"


@contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Exclusive lock on destination ``out`` (``fcntl.flock`` on :func:`lock_path`); a second writer of the same
    destination fails at once with ArtifactError instead of silently replacing the first one's artifact."""
    lock = lock_path(out)
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise os_error(exc, out) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ArtifactError(f"output '{out}' is being written by another neurocompile process right now; "
                                "wait for it to finish or choose another -o") from None
        try:  # the holder before us may have removed the file we locked: lock the file that is there now
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield
    finally:
        try:
            os.unlink(lock)
        except OSError:
            pass
        os.close(fd)


_TMP_RE = r"\.{name}\.(nc-tmp-|nc-old-)?[a-z0-9_]{{8}}"
_ARTIFACT_ENTRIES = {MANIFEST, TARGET_FILE, "int", "float", "quant_report.json", "checks.json", "placement.json",
                     "network.net.h5"}


def clean_stale_temporaries(out: Path) -> list[Path]:
    """Remove temporary folders a killed export of ``out`` left behind (``.NAME.nc-tmp-XXXXXXXX``, and the
    ``.NAME.XXXXXXXX`` folders of earlier versions when they hold only artifact files). Call under the lock."""
    pattern = re.compile(_TMP_RE.format(name=re.escape(out.name)))
    removed: list[Path] = []
    try:
        siblings = list(out.parent.iterdir())
    except OSError:
        return removed
    for p in siblings:
        if not pattern.fullmatch(p.name) or not p.is_dir() or p.is_symlink():
            continue
        ours = p.name.startswith(f".{out.name}.nc-")
        if not ours and not {c.name for c in p.iterdir()} <= _ARTIFACT_ENTRIES:
            continue  # an old-style name that holds something else: not ours to delete
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


def artifact_problem(path: Path) -> str | None:
    """Why ``path`` is not an intact neurocompile artifact (None when it is one): the manifest must validate,
    every listed file must match its hash, and nothing else may be in the folder."""
    try:
        manifest = _read_manifest(path)
        _verify_files(path, manifest)
    except ArtifactError as exc:
        return str(exc)
    listed = set(manifest["files"]) | {MANIFEST}
    dirs = {str(Path(f).parent.as_posix()) for f in listed} - {"."}
    for p in sorted(path.rglob("*")):
        rel = p.relative_to(path).as_posix()
        if rel in listed or (p.is_dir() and not p.is_symlink() and rel in dirs):
            continue
        return f"it holds '{rel}', which is not part of the artifact"
    return None


def write_artifact(
    out: Path,
    int_graph: Graph,
    float_graph: Graph | None,
    manifest: dict[str, Any],
    extra_json: dict[str, Any] | None = None,
    writers: Sequence[Callable[[Path], object]] | None = None,
    force: bool = False,
    *,
    target: Target,
) -> Path:
    """Write an artifact atomically to ``out``, compiled for ``target``.

    ``target`` is stored whole in ``target.json`` (:meth:`Target.to_dict`) and named in the manifest's
    ``target.name``; ``extra_json`` maps file names to JSON-able objects; ``writers`` are callables writing
    further files into the (temporary) artifact directory. The manifest gets the SHA-256 of every file.

    Safety: the destination is locked (:func:`output_lock`) for the whole write; an existing ``out`` is
    replaced only with ``force`` and only when it is an intact artifact (:func:`artifact_problem`); the new
    artifact is built in a temporary sibling and renamed into place, the old one renamed away first and
    deleted last; file-system errors become one OutputError line and leave nothing behind. Before the
    writers (the HDF5 writer cannot survive a full disk) twice the bytes written so far must be free.
    """
    from neurocompile.ir.serialize import save_graph

    out = Path(out)
    check_replace(out, force)
    check_output_path(out, folder=True)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_error(exc, out) from None
    with output_lock(out):
        clean_stale_temporaries(out)
        check_replace(out, force)  # again under the lock: another export may have finished meanwhile
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.nc-tmp-", dir=out.parent))
        except OSError as exc:
            raise os_error(exc, out) from None
        old = None
        try:
            save_graph(int_graph, tmp / "int")
            if float_graph is not None:
                save_graph(float_graph, tmp / "float")
            for name, obj in sorted({**(extra_json or {}), TARGET_FILE: target.to_dict()}.items()):
                (tmp / name).write_text(dumps(obj))
            if writers:
                written = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
                ensure_free_space(out.parent, 2 * written + MIN_FREE_BYTES, f"artifact '{out}'")
            for w in writers or []:
                w(tmp)
            files = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())
            full = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "neurocompile_version": __version__,
                **manifest,
                "target": {"name": target.name},
                "files": {f: sha256(tmp / f) for f in files},
            }
            (tmp / MANIFEST).write_text(dumps(full))
            os.chmod(tmp, 0o755)
            if out.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{out.name}.nc-old-", dir=out.parent))
                os.replace(out, old / "artifact")
            os.replace(tmp, out)
        except OSError as exc:
            _undo(tmp, old, out)
            raise os_error(exc, out) from None
        except BaseException:
            _undo(tmp, old, out)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return out


def check_replace(out: Path, force: bool) -> None:
    """ArtifactError unless ``out`` may be written: absent, or (with ``force``) an intact artifact."""
    if not out.exists() and not out.is_symlink():
        return
    if not force:
        raise ArtifactError(f"output '{out}' already exists; pass --force to overwrite it or choose another -o")
    if out.is_symlink() or not out.is_dir():
        raise ArtifactError(f"output '{out}' exists and is not a neurocompile artifact (not a folder); refusing to "
                            "replace it, even with --force; choose another -o")
    problem = artifact_problem(out)
    if problem is not None:
        raise ArtifactError(f"output '{out}' is not an intact neurocompile artifact ({problem}); refusing to "
                            "replace it, even with --force; move it away yourself or choose another -o")


def _undo(tmp: Path, old: Path | None, out: Path) -> None:
    """Roll back a failed write: remove the temporary folder, put the previous artifact back."""
    shutil.rmtree(tmp, ignore_errors=True)
    if old is not None:
        if (old / "artifact").exists() and not out.exists():
            try:
                os.replace(old / "artifact", out)
            except OSError:
                return  # keep the old artifact in its temporary folder rather than lose it
        shutil.rmtree(old, ignore_errors=True)


def load_artifact(path: Path | str, verify_hashes: bool = True) -> Artifact:
    """Load and validate an artifact directory: manifest schema (types, ranges, paths inside the artifact),
    format version, file hashes and the target snapshot (checked as a target file is)."""
    from neurocompile.ir.serialize import load_graph

    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"artifact '{path}' does not exist; create one with 'neurocompile export MODEL --target T'")
    if not path.is_dir() or not (path / MANIFEST).is_file():
        raise ArtifactError(f"'{path}' is not a neurocompile artifact (no {MANIFEST}); "
                            "artifacts are directories written by 'neurocompile export'")
    manifest = _read_manifest(path)
    if verify_hashes:
        _verify_files(path, manifest)
    target = _read_target(path, manifest)
    try:
        int_graph = load_graph(path / "int")
        float_graph = load_graph(path / "float") if (path / "float").is_dir() else None
    except NeurocompileError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoding failure of a corrupt file becomes one clear error
        raise ArtifactError(f"{path}: cannot read the graph ({type(e).__name__}: {e}); re-export the model") from None
    return Artifact(path=path, manifest=manifest, int_graph=int_graph, float_graph=float_graph, target_spec=target)
