"""Offline datasets of the reference models: sequential digits (sklearn) and ListOps (generated)."""

from __future__ import annotations

import numpy as np
import torch

from neurocompile.errors import DatasetError
from neurocompile.models.listops import VOCAB, ListOpsSpec, generate_listops

__all__ = ["load_sdigits", "load_listops", "LISTOPS_VOCAB_SIZE", "SDIGITS_SPLIT"]

SDIGITS_SPLIT = {"test_size": 0.25, "random_state": 0, "stratify": "labels"}
LISTOPS_VOCAB_SIZE = len(VOCAB)


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise DatasetError(f"unknown split {split!r}; expected 'train' or 'test'")


def load_sdigits(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Sequential digits: sklearn's 8x8 digits read row by row, one pixel per step.

    Returns ``x`` float32 [n, 64, 1] (pixel / 16, in [0, 1]) and ``y`` int64 [n]. The split is fixed:
    ``train_test_split(test_size=0.25, random_state=0, stratify=y)`` -> 1347 train, 450 test.
    """
    _check_split(split)
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.data.astype(np.float32) / 16.0
    labels = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(images, labels, test_size=0.25, random_state=0, stratify=labels)
    x, y = (x_tr, y_tr) if split == "train" else (x_te, y_te)
    return torch.from_numpy(np.ascontiguousarray(x)).unsqueeze(-1), torch.from_numpy(np.ascontiguousarray(y))


def load_listops(
    split: str = "train", n: int | None = None, max_length: int = 128, min_length: int = 1, seed: int = 0,
    max_depth: int = 10, max_args: int = 10,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generated ListOps: ``x`` int64 [n, max_length] token ids (0 = padding, right-padded), ``y`` int64 [n].

    The train split uses ``seed``, the test split ``seed + 1_000_003``, so both are fixed for a given seed.
    Default sizes: 8000 train, 2000 test.
    """
    _check_split(split)
    if n is None:
        n = 8000 if split == "train" else 2000
    spec = ListOpsSpec(max_length=max_length, min_length=min_length, max_depth=max_depth, max_args=max_args)
    x, y = generate_listops(n, seed if split == "train" else seed + 1_000_003, spec)
    return torch.from_numpy(x), torch.from_numpy(y)
