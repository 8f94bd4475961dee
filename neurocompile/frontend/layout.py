"""Foreign state_dicts: map their keys onto neurocompile's checkpoint layout with declarative rules.

A layout is a TOML file (built-in ones in ``neurocompile/frontend/layouts/``: ``state-spaces-s4d``,
``spikingssm-sdn``) with

- ``[[rule]]``: ``match`` (a regular expression that must match the whole foreign key), ``to`` (the neurocompile
  key, with ``\\1``.. groups), optional ``divide_by`` (another foreign key, with the same groups, whose tensor
  divides this one first: a ratio such as refractory / threshold), ``reshape`` (a shape, -1 allowed),
  ``squeeze_leading`` (drop leading axes of size 1), ``unsqueeze`` (insert an axis of size 1 there, e.g. -1 for a
  Linear weight [2H, H] read as a kernel-1 Conv1d [2H, H, 1]), ``transform`` (``log`` / ``exp`` / ``neg`` /
  ``log_softplus``: log(log(1 + e^x)), an inverse-softplus parameterised A_re read as ``log_A_real``), or ``drop``
  (a reason: the tensor is not compiled). A complex tensor is stored as its real view [..., 2];
- ``[[fill]]``: ``key`` and ``like`` (with ``{i}`` for each block present), ``value`` (``zero``, ``one``,
  ``complex_one``: a real view [..., 2] holding 1 + 0i, or a number), for tensors the foreign layout does not store.

The first matching rule wins. A key no rule matches is an error naming the key and the layout. The mapped weights
are then loaded like a bare state_dict with ``--config`` (a ModelConfig JSON).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from neurocompile.errors import ModelLoadError

__all__ = ["LAYOUTS_DIR", "apply_layout", "builtin_layouts", "load_with_layout", "read_layout"]

LAYOUTS_DIR = Path(__file__).with_name("layouts")
_TRANSFORMS = ("log", "exp", "neg", "log_softplus")


def builtin_layouts() -> list[str]:
    return sorted(p.stem for p in LAYOUTS_DIR.glob("*.toml"))


def read_layout(spec: str | Path) -> dict[str, Any]:
    """A layout by built-in name or TOML file path."""
    import tomli

    p = Path(spec)
    if not p.is_file():
        p = LAYOUTS_DIR / f"{spec}.toml"
        if not p.is_file():
            raise ModelLoadError(f"layout '{spec}' is neither a rules .toml file nor a built-in layout "
                                 f"({', '.join(builtin_layouts())})")
    try:
        doc = tomli.loads(p.read_text())
    except (OSError, UnicodeDecodeError, tomli.TOMLDecodeError) as exc:
        raise ModelLoadError(f"layout file {p}: not valid TOML ({exc})") from None
    rules = doc.get("rule", [])
    if not isinstance(rules, list) or not rules:
        raise ModelLoadError(f"layout file {p}: no [[rule]] entries")
    for i, r in enumerate(rules):
        if not isinstance(r, dict) or "match" not in r or not ("to" in r or "drop" in r):
            raise ModelLoadError(f"layout file {p}: rule {i + 1} needs 'match' and 'to' (or 'drop')")
        try:
            r["_re"] = re.compile(r["match"])
        except re.error as exc:
            raise ModelLoadError(f"layout file {p}: rule {i + 1} match {r['match']!r} is not a regex ({exc})") from None
        if r.get("transform") not in (None, *_TRANSFORMS):
            raise ModelLoadError(f"layout file {p}: rule {i + 1} transform {r['transform']!r} is not one of "
                                 f"{'/'.join(_TRANSFORMS)}")
    doc["_path"] = str(p)
    return doc


def apply_layout(state: dict[str, torch.Tensor], layout: dict[str, Any], where: str) -> tuple[dict, list]:
    """(neurocompile state_dict, dropped [(key, reason)]) from a foreign ``state``."""
    out: dict[str, torch.Tensor] = {}
    dropped: list[tuple[str, str]] = []
    name = layout.get("name", layout["_path"])
    for key, t in state.items():
        for r in layout["rule"]:
            m = r["_re"].fullmatch(key)
            if m is None:
                continue
            if "drop" in r:
                dropped.append((key, str(r["drop"])))
                break
            new = m.expand(r["to"])
            v = t.detach()
            if "divide_by" in r:
                other = m.expand(r["divide_by"])
                if other not in state:
                    raise ModelLoadError(f"{where}: layout '{name}' divides '{key}' by '{other}', which the "
                                         f"state_dict does not hold")
                v = v / state[other].detach()
            if v.is_complex():  # neurocompile checkpoints hold complex B and C as real views [..., 2]
                v = torch.view_as_real(v.resolve_conj())
            if r.get("squeeze_leading"):
                while v.dim() > 1 and v.shape[0] == 1:
                    v = v[0]
            if "unsqueeze" in r:
                v = v.unsqueeze(int(r["unsqueeze"]))
            if "reshape" in r:
                try:
                    v = v.reshape(*r["reshape"])
                except RuntimeError as exc:
                    raise ModelLoadError(f"{where}: layout '{name}' cannot reshape '{key}' {list(t.shape)} to "
                                         f"{r['reshape']} ({exc})") from None
            v = _transform(v, r.get("transform"), key, name, where)
            if new in out:
                raise ModelLoadError(f"{where}: layout '{name}' maps two keys onto '{new}' (second: '{key}')")
            out[new] = v.contiguous()
            break
        else:
            raise ModelLoadError(f"{where}: key '{key}' {list(t.shape)} matches no rule of layout '{name}' "
                                 f"({layout['_path']}); add a [[rule]] for it or choose another --layout "
                                 f"({', '.join(builtin_layouts())})")
    blocks = sorted({int(m.group(1)) for k in out if (m := re.match(r"blocks\.(\d+)\.", k))})
    for f in layout.get("fill", []):
        for i in blocks:
            key, like = f["key"].format(i=i), f["like"].format(i=i)
            if key in out or like not in out:
                continue
            ref = out[like]
            if f["value"] == "complex_one":
                v = torch.zeros_like(ref)
                v[..., 0] = 1.0
            elif isinstance(f["value"], (int, float)) and not isinstance(f["value"], bool):
                v = torch.full_like(ref, float(f["value"]))
            elif f["value"] in ("one", "zero"):
                v = torch.ones_like(ref) if f["value"] == "one" else torch.zeros_like(ref)
            else:
                raise ModelLoadError(f"{where}: layout '{name}' fill value {f['value']!r} for '{key}' is not zero, "
                                     f"one, complex_one or a number")
            out[key] = v
    return out, dropped


def _transform(v: torch.Tensor, how: str | None, key: str, name: str, where: str) -> torch.Tensor:
    if how in ("log", "log_softplus"):
        if how == "log_softplus":
            v = torch.nn.functional.softplus(v.double()).to(v.dtype)
        if bool((v <= 0).any()):
            raise ModelLoadError(f"{where}: layout '{name}' takes the log of '{key}', which has values <= 0")
        return torch.log(v)
    if how == "exp":
        return torch.exp(v)
    return -v if how == "neg" else v


def load_with_layout(path: str | Path, config: Any, layout: str | Path):
    """A :class:`~neurocompile.frontend.load.LoadedModel` from a foreign state_dict, a config and a layout."""
    from neurocompile.fileio import sha256
    from neurocompile.frontend.load import (
        LoadedModel,
        _build_classifier,
        resolve_config,
    )

    p = Path(path)
    rules = read_layout(layout)
    cfg = resolve_config(config)
    if cfg is None:
        raise ModelLoadError(f"{p}: --layout needs --config (a ModelConfig JSON describing the architecture)")
    from neurocompile.frontend.safety import check_model_file

    check_model_file(p)  # the archive is scanned for pickled code before any torch loader sees it
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one-line error
        raise ModelLoadError(f"{p}: not a readable state_dict ({type(exc).__name__}: {str(exc)[:200]})") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelLoadError(f"{p}: --layout needs a state_dict (name -> tensor), got {type(obj).__name__}")
    state, dropped = apply_layout(obj, rules, str(p))
    loaded = LoadedModel(_build_classifier(cfg, state, f"{p} (layout {rules.get('name', layout)})"), cfg,
                         "state_dict", p)
    loaded.sha256 = sha256(p)
    loaded.metrics = {"layout": rules.get("name", str(layout)), "dropped": [k for k, _ in dropped]}
    return loaded
