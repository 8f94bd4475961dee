"""Deployable artifacts: a directory holding the integer graph, the float graph it came from, and a manifest.

Layout::

    <name>.<target>/
      manifest.json        format version, neurocompile version, target, input shape, options, file hashes
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

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurocompile import __version__
from neurocompile.errors import ArtifactError, NeurocompileError
from neurocompile.fileio import sha256
from neurocompile.ir.graph import Graph

FORMAT = "neurocompile-artifact"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def dumps(obj: Any) -> str:
    """Deterministic JSON text (sorted keys, 2-space indent, trailing newline)."""
    return json.dumps(obj, sort_keys=True, indent=2, allow_nan=False) + "\n"


@dataclass
class Artifact:
    """A loaded artifact: its directory, manifest and graphs."""

    path: Path
    manifest: dict[str, Any]
    int_graph: Graph
    float_graph: Graph | None

    @property
    def target(self) -> str:
        return str(self.manifest["target"]["name"])

    def read_json(self, name: str) -> Any:
        p = self.path / name
        if not p.exists():
            return None
        return json.loads(p.read_text())


def write_artifact(
    out: Path,
    int_graph: Graph,
    float_graph: Graph | None,
    manifest: dict[str, Any],
    extra_json: dict[str, Any] | None = None,
    writers: list[Callable[[Path], None]] | None = None,
    force: bool = False,
) -> Path:
    """Write an artifact atomically to ``out``.

    ``extra_json`` maps file names to JSON-able objects; ``writers`` are callables writing further files
    into the (temporary) artifact directory. The manifest gets the SHA-256 of every file.
    """
    from neurocompile.ir.serialize import save_graph

    out = Path(out)
    if out.exists() and not force:
        raise ArtifactError(f"output '{out}' already exists; pass --force to overwrite it or choose another -o")
    if out.exists() and not (out / MANIFEST).exists():
        raise ArtifactError(f"output '{out}' exists and is not a neurocompile artifact; refusing to overwrite it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        save_graph(int_graph, tmp / "int")
        if float_graph is not None:
            save_graph(float_graph, tmp / "float")
        for name, obj in sorted((extra_json or {}).items()):
            (tmp / name).write_text(dumps(obj))
        for w in writers or []:
            w(tmp)
        files = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())
        full = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "neurocompile_version": __version__,
            **manifest,
            "files": {f: sha256(tmp / f) for f in files},
        }
        (tmp / MANIFEST).write_text(dumps(full))
        os.chmod(tmp, 0o755)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def load_artifact(path: Path | str, verify_hashes: bool = True) -> Artifact:
    """Load and validate an artifact directory (format, version, file hashes)."""
    from neurocompile.ir.serialize import load_graph

    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"artifact '{path}' does not exist; create one with 'neurocompile export MODEL --target T'")
    if not path.is_dir() or not (path / MANIFEST).is_file():
        raise ArtifactError(f"'{path}' is not a neurocompile artifact (no {MANIFEST}); "
                            "artifacts are directories written by 'neurocompile export'")
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{path / MANIFEST}: not valid JSON ({e}); re-export the model") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{path / MANIFEST}: not a neurocompile artifact manifest; re-export the model")
    ver = manifest.get("format_version")
    if ver != FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: artifact format version {ver!r} (written by neurocompile "
            f"{manifest.get('neurocompile_version', '?')}) is not supported by neurocompile {__version__} "
            f"(format version {FORMAT_VERSION}); re-export the model with this version")
    if verify_hashes:
        files = manifest.get("files")
        if not isinstance(files, dict):
            raise ArtifactError(f"{path / MANIFEST}: missing 'files' table; re-export the model")
        for name, digest in sorted(files.items()):
            f = path / name
            if not f.is_file():
                raise ArtifactError(f"{path}: file '{name}' listed in the manifest is missing; re-export the model")
            if sha256(f) != digest:
                raise ArtifactError(f"{path}: file '{name}' does not match its manifest hash (modified or corrupt); "
                                    "re-export the model")
    try:
        int_graph = load_graph(path / "int")
        float_graph = load_graph(path / "float") if (path / "float").is_dir() else None
    except NeurocompileError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoding failure of a corrupt file becomes one clear error
        raise ArtifactError(f"{path}: cannot read the graph ({type(e).__name__}: {e}); re-export the model") from None
    return Artifact(path=path, manifest=manifest, int_graph=int_graph, float_graph=float_graph)
