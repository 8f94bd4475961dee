"""The artifact manifest's schema: every key's type and range, and file paths that stay inside the artifact.

:func:`read_manifest` parses ``manifest.json`` and raises :class:`~neurocompile.errors.ArtifactError` with one
line naming the key, the value and the rule; :func:`verify_files` checks every listed file against its hash;
:func:`read_target` reads the snapshot of the target the artifact was compiled for (``target.json``) by the
target files' own rules (:func:`neurocompile.target.target_from_dict`).
A file path is refused when it is absolute, climbs out (``..``), is not in POSIX form, or resolves (through a
link) outside the artifact folder.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

from neurocompile import __version__
from neurocompile.errors import ArtifactError, TargetError
from neurocompile.fileio import sha256
from neurocompile.target import NAME_RE, Target, target_from_dict

__all__ = ["FORMAT", "FORMAT_VERSION", "MANIFEST", "TARGET_FILE", "read_manifest", "read_target", "validate_manifest",
           "verify_files"]

FORMAT = "neurocompile-artifact"
#: 2: the target snapshot moved from the manifest's ``target.config`` to its own checked file, ``target.json``
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
TARGET_FILE = "target.json"
#: a manifest larger than this is not one neurocompile wrote (bytes)
MAX_MANIFEST_BYTES = 64 << 20
#: the largest input width and sequence length a manifest may declare
MAX_INPUT_SIZE = 1 << 24
MAX_STEPS = 1 << 31

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
REQUIRED_FILES = ("int/graph.json", TARGET_FILE)


def _bad(path: Path, key: str, problem: str) -> ArtifactError:
    return ArtifactError(f"{path / MANIFEST}: key '{key}': {problem}; re-export the model")


def _kind(v: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", dict: "object",
            list: "array", type(None): "null"}.get(type(v), type(v).__name__)


def _int(path: Path, m: dict[str, Any], section: str, key: str, lo: int, hi: int) -> None:
    v = m[section].get(key)
    if isinstance(v, bool) or not isinstance(v, int):
        raise _bad(path, f"{section}.{key}", f"expected an integer, got {_kind(v)} {v!r}"[:200])
    if not lo <= v <= hi:
        raise _bad(path, f"{section}.{key}", f"{v} is out of range [{lo}, {hi}]")


def _typed(path: Path, m: dict[str, Any], section: str, key: str, types: tuple[type, ...], required: bool = True) -> None:
    if key not in m[section]:
        if required:
            raise _bad(path, f"{section}.{key}", "missing")
        return
    v = m[section][key]
    if isinstance(v, bool) and bool not in types or not isinstance(v, types):
        want = " or ".join(_kind(t()) if t is not type(None) else "null" for t in types)
        raise _bad(path, f"{section}.{key}", f"expected {want}, got {_kind(v)}")


def safe_member(path: Path, name: Any) -> Path:
    """``path / name`` for a manifest file entry, refusing names that leave the artifact."""
    if not isinstance(name, str) or not name:
        raise _bad(path, "files", f"file name {name!r} is not a non-empty string")
    pure = PurePosixPath(name)
    if ("\\" in name or "\x00" in name or pure.is_absolute() or ".." in pure.parts or name != pure.as_posix()
            or re.match(r"^[A-Za-z]:", name)):
        raise _bad(path, f"files.{name}"[:200], "path leaves the artifact folder or is not a plain relative path")
    full = path / name
    root = path.resolve()
    try:
        inside = full.resolve().is_relative_to(root)
    except (OSError, RuntimeError):
        inside = False
    if not inside:
        raise _bad(path, f"files.{name}", "resolves outside the artifact folder (a link)")
    return full


def validate_manifest(path: Path, m: Any) -> dict[str, Any]:
    """Check a parsed manifest against the schema; returns it. ``path``: the artifact folder (for messages)."""
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise ArtifactError(f"{path / MANIFEST}: not a neurocompile artifact manifest; re-export the model")
    ver = m.get("format_version")
    if ver != FORMAT_VERSION or isinstance(ver, bool):
        raise ArtifactError(
            f"{path}: artifact format version {ver!r} (written by neurocompile "
            f"{m.get('neurocompile_version', '?')}) is not supported by neurocompile {__version__} "
            f"(format version {FORMAT_VERSION}); re-export the model with this version")
    for section in ("files", "model", "target", "input", "options"):
        if section not in m:
            raise _bad(path, section, "missing")
        if not isinstance(m[section], dict):
            raise _bad(path, section, f"expected an object, got {_kind(m[section])}")
    files = m["files"]
    for name, digest in files.items():
        safe_member(path, name)
        if name == MANIFEST:
            raise _bad(path, f"files.{name}", "the manifest cannot list itself")
        if not isinstance(digest, str) or not _HEX64.match(digest):
            raise _bad(path, f"files.{name}", f"expected a SHA-256 hex digest, got {str(digest)[:80]!r}")
    for name in REQUIRED_FILES:
        if name not in files:
            raise _bad(path, "files", f"'{name}' is not listed")
    tname = m["target"].get("name")
    if not isinstance(tname, str) or not NAME_RE.match(tname):
        raise _bad(path, "target.name", f"expected a target name such as 'loihi2', got {str(tname)[:80]!r}")
    _int(path, m, "input", "size", 1, MAX_INPUT_SIZE)
    _int(path, m, "input", "steps", 1, MAX_STEPS)
    _typed(path, m, "input", "tokens", (bool,))
    for key in ("name", "file"):
        _typed(path, m, "model", key, (str,), required=False)
    for key in ("family", "task"):
        _typed(path, m, "model", key, (str, type(None)), required=False)
    _typed(path, m, "model", "task_options", (dict,), required=False)
    _typed(path, m, "model", "stripped", (list,), required=False)
    return m


def read_manifest(path: Path) -> dict[str, Any]:
    """Parse and validate ``path/manifest.json`` (ArtifactError naming the key on any problem)."""
    return validate_manifest(path, _read_json(path / MANIFEST, "a manifest"))


def _read_json(f: Path, what: str) -> Any:
    """The JSON in artifact file ``f`` (at most MAX_MANIFEST_BYTES), or one ArtifactError line naming the file."""
    try:
        if f.stat().st_size > MAX_MANIFEST_BYTES:
            raise ArtifactError(f"{f}: {f.stat().st_size} bytes is too large for {what}; re-export the model")
        return json.loads(f.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise ArtifactError(f"{f}: not valid JSON ({' '.join(str(e).split())[:120]}); re-export the model") from None
    except OSError as e:
        raise ArtifactError(f"{f}: cannot be read ({e.strerror or e}); re-export the model") from None


def read_target(path: Path, manifest: dict[str, Any]) -> Target:
    """The target ``path`` was compiled for, from its ``target.json`` snapshot: every key, unit, source and range
    checked as in a target file, and its name equal to the manifest's ``target.name`` (ArtifactError otherwise)."""
    f = safe_member(path, TARGET_FILE)
    data = _read_json(f, "a target snapshot")
    try:
        target = target_from_dict(data, f)
    except TargetError as e:
        raise ArtifactError(f"{e}; re-export the model") from None
    if target.name != manifest["target"]["name"]:
        raise ArtifactError(f"{f}: target '{target.name}' differs from the manifest's target.name "
                            f"'{manifest['target']['name']}'; re-export the model")
    return target


def verify_files(path: Path, manifest: dict[str, Any]) -> None:
    """Every file the manifest lists exists inside ``path`` and matches its SHA-256."""
    for name, digest in sorted(manifest["files"].items()):
        f = safe_member(path, name)
        if not f.is_file():
            raise ArtifactError(f"{path}: file '{name}' listed in the manifest is missing; re-export the model")
        try:
            ok = sha256(f) == digest
        except OSError as e:
            raise ArtifactError(f"{path}: file '{name}' cannot be read ({e.strerror or e})") from None
        if not ok:
            raise ArtifactError(f"{path}: file '{name}' does not match its manifest hash (modified or corrupt); "
                                "re-export the model")
