"""Load a model file safely: checkpoints, bare state_dicts, TorchScript and torch.export programs.

:func:`load_model` detects the format from the file's content (never from its name):

=================  ==================================================  ===============================================
format             how it is read                                      what is needed
=================  ==================================================  ===============================================
``checkpoint``     ``torch.load(weights_only=True)``: neurocompile      nothing (the config is inside)
                   checkpoint dict (format, version, config, weights)
``state_dict``     ``torch.load(weights_only=True)``: name -> tensor    ``config=`` (ModelConfig, dict or JSON file)
``torchscript``    ``torch.jit.load`` (TorchScript archive)             nothing (config embedded by
                                                                       :func:`save_torchscript`, else inferred)
``export``         ``torch.export.load`` (``.pt2`` program)             nothing (same)
``pickle``         ``torch.load`` with ``weights_only=False``: a       ``trust_pickle=True``: unpickling runs code
                   pickled ``nn.Module``                                from the file
=================  ==================================================  ===============================================

Before any torch loader runs, :func:`~neurocompile.frontend.safety.check_model_file` scans every pickle in the file
(unless ``trust_pickle``): ``torch.export.load`` may unpickle without restrictions. Every failure raises
:class:`~neurocompile.errors.ModelLoadError` with one line naming the file, what is wrong and what to do. Weights are checked for NaN/Inf (the tensor is named) and a model without parameters is refused.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from neurocompile.errors import ModelLoadError, NeurocompileError
from neurocompile.fileio import sha256
from neurocompile.frontend.safety import check_model_file

__all__ = ["LoadedModel", "load_model", "resolve_config", "check_weights", "CONFIG_EXTRA_FILE", "FORMATS"]

#: Name of the config JSON embedded in TorchScript / torch.export archives by neurocompile's save helpers.
CONFIG_EXTRA_FILE = "neurocompile/config.json"
FORMATS = ("checkpoint", "state_dict", "torchscript", "export", "pickle", "module")
_CHECKPOINT_FORMAT = "neurocompile-checkpoint"
_CHECKPOINT_VERSIONS = (1,)


@dataclass
class LoadedModel:
    """A model ready to trace.

    Attributes:
        module: the model in eval mode (eager ``nn.Module``, ``ScriptModule``, or the exported program's module).
        config: ``ModelConfig.to_dict()`` when known (checkpoint, given, or embedded), else None.
        format: one of :data:`FORMATS`.
        path: the file it came from (None for in-memory modules).
        sha256: hex digest of the file's bytes ('' for in-memory modules).
        metrics: the checkpoint's metrics dict (empty otherwise).
        program: the ``ExportedProgram`` for ``export`` files.
    """

    module: nn.Module
    config: dict[str, Any] | None
    format: str
    path: Path | None = None
    sha256: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    program: Any = None

    @property
    def checkpoint(self) -> dict[str, Any]:
        """The checkpoint's header (``format``, ``version``, ``config``, ``metrics``; no weights); for other formats
        ``{"metrics": {}}``-like with whatever is known."""
        if self.format == "checkpoint":
            return {"format": _CHECKPOINT_FORMAT, "version": 1, "config": self.config, "metrics": self.metrics}
        return {"config": self.config, "metrics": self.metrics}

    def source(self) -> dict[str, Any]:
        """JSON-able description of where the model came from (for graph.meta and reports)."""
        return {"path": str(self.path) if self.path else None, "format": self.format, "sha256": self.sha256}

    def __call__(self, *args, **kwargs):
        return self.module(*args, **kwargs)


# ---------------------------------------------------------------------------------------------------------- helpers
def _first_line(exc: BaseException) -> str:
    """The informative first sentence of an exception message (torch's are long and multi-line)."""
    text = str(exc).strip()
    line = next((ln.strip() for ln in text.splitlines()
                 if ln.strip() and not ln.strip().startswith("(") and "weights_only" not in ln.lower()),
                text.splitlines()[0] if text else type(exc).__name__)
    if len(line) > 160 and ". " in line:
        line = line.split(". ")[0]
    return line[:300]


def _pickled_class(exc: BaseException) -> str | None:
    """The class a weights_only load refused (``GLOBAL a.b.C``), or None when the failure is something else."""
    text = str(exc)
    import re

    m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text) or re.search(r"GLOBAL ([\w.]+) was not an allowed", text)
    return m.group(1) if m else None


def resolve_config(config: Any, where: str = "config") -> dict[str, Any] | None:
    """``config=`` as a plain ModelConfig dict: accepts a ModelConfig, a dict, or a path to a JSON file."""
    if config is None:
        return None
    from neurocompile.models.config import ModelConfig

    if isinstance(config, ModelConfig):
        return config.to_dict()
    if isinstance(config, (str, os.PathLike)):
        p = Path(config)
        if not p.is_file():
            raise ModelLoadError(f"config file {p} does not exist (pass a ModelConfig JSON file or dict)")
        try:
            config = json.loads(p.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ModelLoadError(f"config file {p} is not valid JSON: {_first_line(exc)}") from None
        where = str(p)
    if not isinstance(config, dict):
        raise ModelLoadError(f"{where}: a model config must be a dict of ModelConfig fields, got {type(config).__name__}")
    try:
        return ModelConfig.from_dict(dict(config)).to_dict()
    except NeurocompileError as exc:
        raise ModelLoadError(f"{where}: invalid model config: {exc}") from None
    except Exception as exc:  # wrong value types inside the config
        raise ModelLoadError(f"{where}: invalid model config: {type(exc).__name__}: {_first_line(exc)}") from None


def check_weights(named: dict[str, torch.Tensor], where: str) -> None:
    """Refuse empty models and NaN/Inf weights, naming the tensor."""
    if not named or all(t.numel() == 0 for t in named.values()):
        raise ModelLoadError(f"{where}: the model has no weights (empty model); nothing to compile")
    for name, t in named.items():
        if isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex()) and t.numel():
            bad = ~torch.isfinite(t)
            if bool(bad.any()):
                raise ModelLoadError(f"{where}: tensor '{name}' holds {int(bad.sum())} NaN/Inf value(s) of "
                                     f"{t.numel()}; the model is broken (retrain or fix the weights)")


def _module_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    out = {k: v.detach() for k, v in module.named_parameters()}
    out.update({k: v.detach() for k, v in module.named_buffers() if v is not None})
    return out


def _build_classifier(config: dict[str, Any], state: dict[str, Any], where: str) -> nn.Module:
    """SSMClassifier(config) with ``state`` loaded strictly; shapes are checked on the meta device first."""
    from neurocompile.models.config import ModelConfig
    from neurocompile.models.model import SSMClassifier

    cfg = ModelConfig.from_dict(config)
    if not state:
        raise ModelLoadError(f"{where}: the state_dict holds no weights (empty model); nothing to compile")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ModelLoadError(f"{where}: state_dict entry {bad[0]!r} is not a named tensor")
    if cfg.n_layers > max(1, len(state)):
        raise ModelLoadError(f"{where}: config n_layers={cfg.n_layers} but the weights hold only {len(state)} tensors")
    try:
        with torch.device("meta"):
            shell = SSMClassifier(cfg)
    except Exception as exc:
        raise ModelLoadError(f"{where}: cannot build the model from its config: {_first_line(exc)}") from None
    want = shell.state_dict()
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {missing[:3]}" + (f" (+{len(missing) - 3} more)" if len(missing) > 3 else ""))
        if unexpected:
            parts.append(f"unexpected {unexpected[:3]}" + (f" (+{len(unexpected) - 3} more)" if len(unexpected) > 3 else ""))
        raise ModelLoadError(f"{where}: weights do not match the config ({'; '.join(parts)}); "
                             f"check that the config belongs to these weights")
    for k, v in want.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise ModelLoadError(f"{where}: tensor '{k}' has shape {list(state[k].shape)}, the config "
                                 f"(d_model={cfg.d_model}, d_state={cfg.d_state}, ...) needs {list(v.shape)}")
    check_weights(state, where)
    model = SSMClassifier(cfg)
    try:
        model.load_state_dict(state, strict=True)
    except Exception as exc:
        raise ModelLoadError(f"{where}: weights do not match the config: {_first_line(exc)}") from None
    return model.eval()


def _zip_names(path: Path) -> list[str] | None:
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        return None


def _detect(names: list[str] | None) -> str:
    """'torchscript' | 'export' | 'torch_save' from an archive's member names (None: not a zip)."""
    if names is None:
        return "torch_save"
    rel = {n.split("/", 1)[1] if "/" in n else n for n in names}
    if any(n.startswith("code/") for n in rel) or "constants.pkl" in rel:
        return "torchscript"
    if "archive_format" in rel or any(n.startswith("models/") for n in rel) or \
            "serialized_exported_program.json" in rel:
        return "export"
    return "torch_save"


# ---------------------------------------------------------------------------------------------------------- loaders
def _load_torchscript(path: Path, config: dict | None) -> LoadedModel:
    extra = {CONFIG_EXTRA_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated in favour of torch.export
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as exc:
        raise ModelLoadError(f"{path}: TorchScript archive cannot be loaded ({type(exc).__name__}: "
                             f"{_first_line(exc)}); the file is truncated or corrupt") from None
    if config is None and extra.get(CONFIG_EXTRA_FILE):
        config = resolve_config(_json_extra(extra[CONFIG_EXTRA_FILE], path), f"{path}:{CONFIG_EXTRA_FILE}")
    module.eval()
    return LoadedModel(module, config, "torchscript", path)


def _json_extra(raw: Any, path: Path) -> Any:
    try:
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8")
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelLoadError(f"{path}: embedded {CONFIG_EXTRA_FILE} is not valid JSON ({_first_line(exc)})") from None


def _load_export(path: Path, config: dict | None) -> LoadedModel:
    extra = {CONFIG_EXTRA_FILE: ""}
    loggers = [logging.getLogger(n) for n in ("torch.export", "torch.export.pt2_archive._package")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:  # torch.export logs a traceback for every file it cannot read; we raise our own error
            lg.setLevel(logging.CRITICAL)
        with open(path, "rb") as f:  # a file object: torch.export.load insists on a '.pt2' suffix for paths
            program = torch.export.load(f, extra_files=extra)
    except Exception as exc:
        raise ModelLoadError(f"{path}: torch.export program cannot be loaded ({type(exc).__name__}: "
                             f"{_first_line(exc)}); the file is truncated, corrupt or from another torch") from None
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
    if config is None and extra.get(CONFIG_EXTRA_FILE):
        config = resolve_config(_json_extra(extra[CONFIG_EXTRA_FILE], path), f"{path}:{CONFIG_EXTRA_FILE}")
    try:
        module = program.module()
    except Exception as exc:
        raise ModelLoadError(f"{path}: torch.export program has no runnable module ({_first_line(exc)})") from None
    return LoadedModel(module, config, "export", path, program=program)


def _load_pickle(path: Path, cls_name: str, trust_pickle: bool, config: dict | None) -> LoadedModel:
    if not trust_pickle:
        raise ModelLoadError(
            f"{path}: the file is a pickled Python object (it needs class {cls_name}); loading it would run code "
            f"stored in the file, which can do anything on this machine. Refused. If you trust the file's source, "
            f"pass trust_pickle=True (CLI: --trust-pickle); better, re-save it as a state_dict, a neurocompile "
            f"checkpoint or a torch.export program"
        )
    try:
        # The only place neurocompile unpickles arbitrary objects: the user asked for it with trust_pickle=True.
        obj = torch.load(path, weights_only=False, map_location="cpu")
    except Exception as exc:
        raise ModelLoadError(f"{path}: pickled object cannot be loaded ({type(exc).__name__}: {_first_line(exc)})") from None
    if not isinstance(obj, nn.Module):
        raise ModelLoadError(f"{path}: the pickled object is a {type(obj).__name__}, not a torch nn.Module")
    obj.eval()
    if config is None:
        cfg = getattr(obj, "config", None)
        if cfg is not None and hasattr(cfg, "to_dict"):
            config = resolve_config(cfg.to_dict(), f"{path}: model.config")
    return LoadedModel(obj, config, "pickle", path)


def _load_saved(path: Path, trust_pickle: bool, config: dict | None) -> LoadedModel:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        cls_name = _pickled_class(exc)
        if cls_name is not None:
            return _load_pickle(path, cls_name, trust_pickle, config)
        raise ModelLoadError(f"{path}: not a loadable model file ({_first_line(exc)}); the file is corrupt or not "
                             f"a PyTorch file") from None
    except Exception as exc:  # truncated zip, bad magic number, wrong storage sizes, ...
        raise ModelLoadError(f"{path}: not a loadable model file ({type(exc).__name__}: {_first_line(exc)}); the "
                             f"file is truncated, corrupt or not a PyTorch file") from None
    where = str(path)
    if isinstance(obj, dict) and obj.get("format") == _CHECKPOINT_FORMAT:
        if obj.get("version") not in _CHECKPOINT_VERSIONS or isinstance(obj.get("version"), bool):
            raise ModelLoadError(f"{path}: checkpoint version {obj.get('version')!r} is not supported "
                                 f"(this neurocompile reads {list(_CHECKPOINT_VERSIONS)})")
        for key in ("config", "state_dict"):
            if not isinstance(obj.get(key), dict):
                raise ModelLoadError(f"{path}: checkpoint key '{key}' is missing or not a dict")
        cfg = config if config is not None else resolve_config(obj["config"], f"{path}: checkpoint config")
        model = _build_classifier(cfg, obj["state_dict"], where)
        metrics = obj.get("metrics") if isinstance(obj.get("metrics"), dict) else {}
        return LoadedModel(model, cfg, "checkpoint", path, metrics=dict(metrics))
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict) and "format" not in obj:
        obj = obj["state_dict"]
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        if config is None:
            raise ModelLoadError(f"{path}: a bare state_dict ({len(obj)} tensors) holds no architecture; pass "
                                 f"config= (a ModelConfig, its dict, or a JSON file; CLI: --config)")
        return LoadedModel(_build_classifier(config, dict(obj), where), config, "state_dict", path)
    if isinstance(obj, dict) and not obj:
        raise ModelLoadError(f"{path}: the file holds an empty dict: no weights (empty model)")
    if isinstance(obj, dict) and "format" in obj:
        raise ModelLoadError(f"{path}: format {obj.get('format')!r} is not a neurocompile checkpoint "
                             f"(expected {_CHECKPOINT_FORMAT!r})")
    raise ModelLoadError(f"{path}: the file holds a {type(obj).__name__}, not a model (expected a neurocompile "
                         f"checkpoint, a state_dict, a TorchScript archive or a torch.export program)")


def load_model(path: str | os.PathLike, trust_pickle: bool = False, config: Any = None) -> LoadedModel:
    """Load the model in ``path`` (format detected from content) -> :class:`LoadedModel` in eval mode.

    ``config``: a ModelConfig, its dict, or a JSON file; required for bare state_dicts, optional elsewhere
    (it overrides a config stored in the file). ``trust_pickle``: allow a pickled ``nn.Module`` (runs code).
    """
    p = Path(path)
    if not p.exists():
        raise ModelLoadError(f"{p}: no such file (expected a model: .pt checkpoint/state_dict, TorchScript or .pt2)")
    if p.is_dir():
        raise ModelLoadError(f"{p}: is a directory; pass the model file itself (.pt, .pt2)")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise ModelLoadError(f"{p}: cannot read ({exc})") from None
    if size == 0:
        raise ModelLoadError(f"{p}: the file is empty (0 bytes); it was not written completely")
    cfg = resolve_config(config)
    check_model_file(p, trust_pickle)  # before any torch loader: torch.export.load may unpickle without limits
    fmt = _detect(_zip_names(p))
    if fmt == "torchscript":
        loaded = _load_torchscript(p, cfg)
        check_weights(_module_tensors(loaded.module), str(p))
    elif fmt == "export":
        loaded = _load_export(p, cfg)
        named = {k: v for k, v in loaded.program.state_dict.items() if isinstance(v, torch.Tensor)}
        named.update({k: v for k, v in loaded.program.constants.items() if isinstance(v, torch.Tensor)})
        check_weights(named, str(p))
    else:
        loaded = _load_saved(p, trust_pickle, cfg)
        if loaded.format == "pickle":
            check_weights(_module_tensors(loaded.module), str(p))
    loaded.sha256 = sha256(p)
    return loaded


def wrap_module(module: Any, config: Any = None) -> LoadedModel:
    """A :class:`LoadedModel` for an in-memory model (eager, TorchScript or ExportedProgram)."""
    cfg = resolve_config(config)
    if isinstance(module, LoadedModel):
        return module
    if isinstance(module, torch.export.ExportedProgram):
        return LoadedModel(module.module(), cfg, "export", program=module)
    if not isinstance(module, nn.Module):
        raise ModelLoadError(f"expected a torch nn.Module, a LoadedModel or an ExportedProgram, got {type(module).__name__}")
    if cfg is None:
        c = getattr(module, "config", None)
        if c is not None and hasattr(c, "to_dict"):
            cfg = resolve_config(c.to_dict(), "model.config")
    fmt = "torchscript" if isinstance(module, torch.jit.ScriptModule) else "module"
    return LoadedModel(module, cfg, fmt)
