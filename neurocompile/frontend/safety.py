"""Refuse model files that would run code when loaded, before any torch loader touches them.

``torch.load(weights_only=True)`` is safe on its own, but other loaders are not: ``torch.export.load``
unpickles weights and constants flagged ``use_pickle`` with ``weights_only=False``, unpickles "opaque"
constants with plain :func:`pickle.loads`, and falls back to ``weights_only=False`` for sample inputs it
cannot read safely. So every file is scanned first, without executing anything:

* every pickle stream in the file (a plain pickle, each ``*.pkl`` member of a zip archive, each pickle-like
  member, and the members of zips nested inside the archive) is walked opcode by opcode with
  :func:`pickletools.genops`; every callable it would import (``GLOBAL``, ``STACK_GLOBAL``, ``INST``) must be
  on an allow-list that mirrors what ``weights_only=True`` accepts (tensor rebuild functions, storages, dtypes,
  ``collections.OrderedDict``, ...); extension-registry opcodes (``EXT1/2/4``) and ``STACK_GLOBAL`` with a
  computed name are refused;
* a torch.export archive's payload configs (``*_weights_config.json``, ``*_constants_config.json``) must not
  flag any payload ``use_pickle`` and must not hold custom or opaque objects, because torch.export would
  unpickle those without restrictions.

Only if the file is clean do the torch loaders run. A finding raises :class:`ModelLoadError` naming the
member and the callable, and how to proceed (``--trust-pickle`` for files the user trusts).
"""

from __future__ import annotations

import json
import pickletools
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from neurocompile.errors import ModelLoadError

__all__ = ["Finding", "allowed_globals", "check_model_file", "scan_model_file"]

#: nested archives deeper than this are refused (a torch.export file holds torch.save zips: depth 1)
MAX_DEPTH = 3
#: more findings than this are summarised (the message stays one readable line)
MAX_LISTED = 3

# The core of torch's weights_only allow-list, used when torch's private list is unavailable; the live list
# is merged in by allowed_globals() so the scanner accepts exactly what the safe unpickler accepts.
_STATIC_ALLOWED = frozenset({
    "collections.OrderedDict", "collections.Counter", "builtins.set", "builtins.frozenset", "builtins.bytearray",
    "builtins.complex", "_codecs.encode", "torch.Size", "torch.device", "torch.Tensor",
    "torch.nn.parameter.Parameter", "torch.serialization._get_layout", "torch.storage.TypedStorage",
    "torch.storage.UntypedStorage", "torch._tensor._rebuild_from_type_v2",
    "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor_v3",
    "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
    "torch._utils._rebuild_qtensor", "torch._utils._rebuild_sparse_tensor", "torch._utils._rebuild_nested_tensor",
    "torch._utils._rebuild_meta_tensor_no_storage", "torch._utils._rebuild_device_tensor_from_cpu_tensor",
    "torch._utils._rebuild_device_tensor_from_numpy", "torch._utils._rebuild_wrapper_subclass",
})
# torch.<Type>Storage, torch.<Type>Tensor and dtypes such as torch.float32 are data, not code
_TORCH_DATA = re.compile(r"^torch\.(cuda\.|sparse\.|cuda\.sparse\.)?[A-Z][A-Za-z0-9]*(Storage|Tensor)$"
                         r"|^torch\.(u?int\d+|float\w*|bfloat16|complex\w*|bool|q(u)?int\w+|bits\w+"
                         r"|bcomplex32|per_\w+)$")
# TorchScript archives: list builders of its C++ unpickler and classes defined by the archive's own code/
_TORCHSCRIPT_PREFIXES = ("torch.jit._pickle.", "__torch__.")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_STRING_OPS = frozenset({"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
                         "BINUNICODE8"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_PICKLE_NAMES = (".pkl", ".debug_pkl", ".pt", ".pth", ".bin")
_PICKLED_PREFIXES = ("custom_obj_", "opaque_obj_")


@dataclass(frozen=True)
class Finding:
    """Something in a model file that an unpickler would execute.

    Attributes:
        member: where it is: ``''`` for the file itself, else the archive member (nested: ``outer!inner``).
        what: what was found, e.g. ``"imports os.system"``.
    """

    member: str
    what: str

    def __str__(self) -> str:
        return f"{self.member}: {self.what}" if self.member else self.what


_ALLOWED: frozenset[str] | None = None


def allowed_globals() -> frozenset[str]:
    """Dotted names (``module.name``) the scanner accepts: torch's weights_only allow-list plus the static core."""
    global _ALLOWED
    if _ALLOWED is None:
        names = set(_STATIC_ALLOWED)
        try:
            from torch import _weights_only_unpickler as wou

            names.update(wou._get_allowed_globals())  # keys are 'module.name'
        except Exception:  # noqa: BLE001, S110 - private torch API: fall back to the static list
            pass
        _ALLOWED = frozenset(names)
    return _ALLOWED


def _is_allowed(name: str, torchscript: bool) -> bool:
    if name in allowed_globals() or _TORCH_DATA.match(name):
        return True
    return torchscript and name.startswith(_TORCHSCRIPT_PREFIXES)


def _walk(stream: IO[bytes], member: str, torchscript: bool, strict: bool) -> tuple[list[Finding], bool]:
    """Walk consecutive pickles in ``stream`` -> (findings, parsed at least one complete pickle).

    ``strict``: report what was seen even when the stream is cut or malformed after it (an unpickler executes
    opcodes as it reads them). Otherwise (a member that may be raw tensor data) only complete pickles count.
    """
    findings: list[Finding] = []
    complete = False
    for i in range(5):  # legacy torch.save: magic, protocol, sys_info, object, storage keys; raw bytes follow
        start = stream.peek(1)[:1]
        if not start or (i > 0 and start != b"\x80"):
            break
        if i == 0 and not strict and start[0] not in b"\x80(cS]}":
            break
        seen: list[Finding] = []
        pushed: list[object] = []  # recent string operands (None: not a known string), for STACK_GLOBAL
        memo: dict[int, object] = {}
        try:
            for op, arg, _pos in pickletools.genops(stream):
                name = op.name
                if name in _STRING_OPS:
                    pushed.append(arg if isinstance(arg, str) else None)
                elif name in _GET_OPS:
                    pushed.append(memo.get(arg))
                elif name in _PUT_OPS:
                    memo[arg] = pushed[-1] if pushed else None
                elif name == "MEMOIZE":
                    memo[len(memo)] = pushed[-1] if pushed else None
                elif name in ("GLOBAL", "INST"):
                    dotted = ".".join(str(arg).split(" ", 1))
                    if not _is_allowed(dotted, torchscript):
                        seen.append(Finding(member, f"imports {_show(dotted)} ({name})"))
                    pushed.append(None)
                elif name == "STACK_GLOBAL":
                    mod, attr = (pushed[-2], pushed[-1]) if len(pushed) >= 2 else (None, None)
                    if not (isinstance(mod, str) and isinstance(attr, str)):
                        seen.append(Finding(member, "imports a callable whose name is computed (STACK_GLOBAL)"))
                    elif not _is_allowed(f"{mod}.{attr}", torchscript):
                        seen.append(Finding(member, f"imports {_show(f'{mod}.{attr}')} (STACK_GLOBAL)"))
                    pushed.append(None)
                elif name in ("FRAME", "PROTO"):
                    continue  # framing only: the stack is unchanged
                elif name in ("EXT1", "EXT2", "EXT4"):
                    seen.append(Finding(member, f"imports a callable from the extension registry ({name})"))
                    pushed.append(None)
                else:
                    pushed.append(None)
                if len(pushed) > 64:
                    del pushed[:32]
        except Exception:  # noqa: BLE001 - malformed or not a pickle: what was read so far still counts if strict
            if strict:
                findings += seen
            return findings, complete
        findings += seen
        complete = True
    return findings, complete


def _show(name: str) -> str:
    return name if _IDENT.match(name) else repr(name)[:80]


def _payload_config_findings(zf: zipfile.ZipFile, member: str, prefix: str) -> list[Finding]:
    """torch.export payload configs: entries flagged ``use_pickle`` or holding custom/opaque objects."""
    try:
        cfg = json.loads(zf.read(member).decode("utf-8"))
    except Exception:  # noqa: BLE001 - torch.export refuses a config it cannot parse before unpickling anything
        return []
    entries = cfg.get("config") if isinstance(cfg, dict) else None
    if not isinstance(entries, dict):
        return []
    kind = "constant" if "constants_config" in member else "weight"
    out = []
    for fqn, meta in entries.items():
        if not isinstance(meta, dict):
            continue
        path_name = str(meta.get("path_name", ""))
        if meta.get("use_pickle") or path_name.startswith(_PICKLED_PREFIXES):
            out.append(Finding(prefix + member, f"{kind} '{fqn}' is stored as a pickle (use_pickle, {path_name}), "
                                                f"which torch.export.load unpickles without restrictions"))
    return out


def _scan_zip(zf: zipfile.ZipFile, prefix: str, depth: int) -> list[Finding]:
    names = zf.namelist()
    rel = [n.split("/", 1)[1] if "/" in n else n for n in names]
    torchscript = any(r.startswith("code/") for r in rel) or "constants.pkl" in rel
    findings: list[Finding] = []
    for name, r in zip(names, rel, strict=True):
        if name.endswith("/"):
            continue
        where = prefix + name
        if r.endswith(("_weights_config.json", "_constants_config.json")):
            findings += _payload_config_findings(zf, name, prefix)
            continue
        try:
            with zf.open(name) as f:
                head = f.read(4)
            if head.startswith(b"PK\x03\x04"):
                if depth >= MAX_DEPTH:
                    findings.append(Finding(where, f"archive nested more than {MAX_DEPTH} levels deep"))
                    continue
                with zf.open(name) as f, zipfile.ZipFile(f) as inner:
                    findings += _scan_zip(inner, where + "!", depth + 1)
                continue
            strict = r.endswith(_PICKLE_NAMES)
            if not strict and (not head or head[0] not in b"\x80(cS]}"):
                continue
            with zf.open(name) as f:
                found, _ = _walk(f, where, torchscript, strict)
            findings += found
        except _UNREADABLE as exc:  # a member we cannot check is not handed to a loader that might read it
            raise _Corrupt(where, exc) from None
    return findings


_UNREADABLE = (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError, RuntimeError,
               zipfile.LargeZipFile)


class _Corrupt(Exception):
    """An archive (member) that cannot be read, so cannot be checked."""

    def __init__(self, where: str, exc: BaseException) -> None:
        super().__init__(where)
        self.where, self.exc = where, exc


def scan_model_file(path: str | Path) -> list[Finding]:
    """Every place in ``path`` (plain pickle, torch.save zip, TorchScript or torch.export archive) where loading
    it would execute code outside the weights_only allow-list. Never unpickles anything.

    An archive that cannot be read completely is refused (ModelLoadError): what cannot be checked is not
    handed to a loader whose zip reader might be more lenient.
    """
    p = Path(path)
    try:
        with open(p, "rb") as f:
            zip_magic = f.read(4) == b"PK\x03\x04"
        if zip_magic or zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as zf:
                return _scan_zip(zf, "", 1)
        with open(p, "rb") as f:
            return _walk(f, "", False, True)[0]
    except _Corrupt as exc:
        raise ModelLoadError(f"{p}: archive member '{exc.where}' cannot be read ({type(exc.exc).__name__}: "
                             f"{' '.join(str(exc.exc).split())[:120]}); the file is truncated or corrupt") from None
    except OSError as exc:
        raise ModelLoadError(f"{p}: cannot read ({exc.strerror or exc})") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError, RuntimeError,
            zipfile.LargeZipFile) as exc:
        raise ModelLoadError(f"{p}: not a readable archive ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:120]}); the file is truncated or corrupt") from None


def check_model_file(path: str | Path, trust_pickle: bool = False) -> None:
    """Raise :class:`ModelLoadError` when ``path`` holds a pickle payload a loader would execute (see module doc);
    nothing is checked when ``trust_pickle`` (the user vouches for the file)."""
    if trust_pickle:
        return
    findings = scan_model_file(path)
    if not findings:
        return
    listed = "; ".join(str(f) for f in findings[:MAX_LISTED])
    if len(findings) > MAX_LISTED:
        listed += f"; and {len(findings) - MAX_LISTED} more"
    raise ModelLoadError(
        f"{path}: the file holds a pickled Python object that would run code when loaded ({listed}); it can do "
        f"anything on this machine. Refused, nothing was unpickled. If you trust the file's source, pass "
        f"trust_pickle=True (CLI: --trust-pickle); better, re-save it as a state_dict, a neurocompile "
        f"checkpoint or a torch.export program without pickled payloads")
