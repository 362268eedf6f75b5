"""needle.data: IDX parsing (valid and corrupt files), datasets, transforms, DataLoader."""
import gzip
import struct

import numpy as np
import pytest

import needle as ndl
from needle.data import (DataLoader, MNISTDataset, NDArrayDataset, RandomCrop, RandomFlipHorizontal,
                         parse_mnist)

from ..images import write_idx


def write_mnist(tmp_path, n=6, seed=0, prefix="train"):
    """Small valid MNIST-format image and label files; returns (paths, pixels uint8, labels)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    images = write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", 2051, (n, 28, 28), pixels.tobytes())
    label_file = write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", 2049, (n,), labels.tobytes())
    return (images, label_file), pixels, labels


def test_parse_mnist_reads_pixels_and_labels(tmp_path):
    (images, labels_file), pixels, labels = write_mnist(tmp_path)
    X, y = parse_mnist(str(images), str(labels_file))
    assert X.shape == (6, 784) and X.dtype == np.float32
    assert y.shape == (6,) and y.dtype == np.uint8
    np.testing.assert_allclose(X, pixels.reshape(6, 784) / 255.0, rtol=1e-6)
    assert X.min() >= 0.0 and X.max() <= 1.0
    np.testing.assert_array_equal(y, labels)


@pytest.mark.parametrize("case", ["bad_image_magic", "bad_label_magic", "truncated_images", "trailing_bytes",
                                  "truncated_header", "count_mismatch", "not_gzip", "truncated_gzip"])
def test_parse_mnist_rejects_corrupt_files(tmp_path, case):
    (images, labels_file), pixels, labels = write_mnist(tmp_path)
    if case == "bad_image_magic":
        write_idx(images, 2049, (6, 28, 28), pixels.tobytes())
    elif case == "bad_label_magic":
        write_idx(labels_file, 2051, (6,), labels.tobytes())
    elif case == "truncated_images":
        write_idx(images, 2051, (6, 28, 28), pixels.tobytes()[:-10])
    elif case == "trailing_bytes":
        write_idx(labels_file, 2049, (6,), labels.tobytes() + b"\x00")
    elif case == "truncated_header":
        images.write_bytes(gzip.compress(struct.pack(">ii", 2051, 6)))
    elif case == "count_mismatch":
        write_idx(labels_file, 2049, (5,), labels[:5].tobytes())
    elif case == "not_gzip":
        write_idx(images, 2051, (6, 28, 28), pixels.tobytes(), compress=False)
    elif case == "truncated_gzip":
        images.write_bytes(images.read_bytes()[:-20])
    with pytest.raises(ValueError):
        parse_mnist(str(images), str(labels_file))


def test_mnist_dataset_indexing(tmp_path):
    (images, labels_file), pixels, labels = write_mnist(tmp_path)
    dataset = MNISTDataset(str(images), str(labels_file))
    expected = pixels.reshape(6, 784) / 255.0
    assert len(dataset) == 6
    x, y = dataset[2]
    assert x.shape == (784,) and y == labels[2]
    np.testing.assert_allclose(x, expected[2], rtol=1e-6)
    xs, ys = dataset[1:4]
    assert xs.shape == (3, 784)
    np.testing.assert_array_equal(ys, labels[1:4])
    xs, ys = dataset[np.array([5, 0])]
    np.testing.assert_allclose(xs, expected[[5, 0]], rtol=1e-6)
    np.testing.assert_array_equal(ys, labels[[5, 0]])


def test_mnist_dataset_transforms_see_28x28x1_images(tmp_path):
    (images, labels_file), pixels, _ = write_mnist(tmp_path)
    seen_shapes = []

    def mirror(img):
        seen_shapes.append(img.shape)
        return img[:, ::-1, :]

    dataset = MNISTDataset(str(images), str(labels_file), transforms=[mirror])
    mirrored = (pixels[:, :, ::-1] / 255.0).reshape(6, 784)
    np.testing.assert_allclose(dataset[3][0], mirrored[3], rtol=1e-6)
    xs, _ = dataset[np.array([0, 4])]
    np.testing.assert_allclose(xs, mirrored[[0, 4]], rtol=1e-6)
    assert seen_shapes == [(28, 28, 1)] * 3


def test_random_flip_horizontal():
    img = np.arange(2 * 3 * 1, dtype=np.float32).reshape(2, 3, 1)
    np.testing.assert_array_equal(RandomFlipHorizontal(p=1.0)(img), img[:, ::-1, :])
    np.testing.assert_array_equal(RandomFlipHorizontal(p=0.0)(img), img)
    np.random.seed(7)
    flips = np.random.rand(20) < 0.5
    np.random.seed(7)
    flip = RandomFlipHorizontal(p=0.5)
    outputs = [flip(img) for _ in range(20)]
    for expect_flip, out in zip(flips, outputs):
        np.testing.assert_array_equal(out, img[:, ::-1, :] if expect_flip else img)


def test_random_crop_is_a_zero_filled_shift():
    img = np.arange(1, 5 * 6 * 2 + 1, dtype=np.float32).reshape(5, 6, 2)
    for seed in range(10):
        np.random.seed(seed)
        shift_x, shift_y = np.random.randint(low=-3, high=4, size=2)
        np.random.seed(seed)
        out = RandomCrop(padding=3)(img)
        assert out.shape == img.shape
        for i in range(5):
            for j in range(6):
                src_i, src_j = i + shift_x, j + shift_y
                inside = 0 <= src_i < 5 and 0 <= src_j < 6
                expected = img[src_i, src_j] if inside else np.zeros(2)
                np.testing.assert_array_equal(out[i, j], expected)


def test_ndarray_dataset_indexing():
    X = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10)
    dataset = NDArrayDataset(X, y)
    assert len(dataset) == 10
    xs, ys = dataset[np.array([3, 1])]
    np.testing.assert_array_equal(xs, X[[3, 1]])
    np.testing.assert_array_equal(ys, [3, 1])
    with pytest.raises(ValueError):
        NDArrayDataset(X, y[:5])


def test_dataloader_in_order_with_partial_last_batch():
    X = np.arange(14, dtype=np.float64).reshape(7, 2)
    y = np.arange(7, dtype=np.uint8)
    loader = DataLoader(NDArrayDataset(X, y), batch_size=3)
    batches = list(loader)
    assert len(loader) == 3 and len(batches) == 3
    assert [b[0].shape for b in batches] == [(3, 2), (3, 2), (1, 2)]
    for xb, yb in batches:
        assert isinstance(xb, ndl.Tensor) and isinstance(yb, ndl.Tensor)
        assert xb.dtype == np.float64 and yb.dtype == np.uint8  # the data's own dtypes, as the course
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in batches]), X)
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), y)


def test_dataloader_shuffle_draws_one_permutation_per_epoch():
    X = np.arange(10, dtype=np.float32).reshape(10, 1)
    loader = DataLoader(NDArrayDataset(X, np.arange(10)), batch_size=4, shuffle=True)
    np.random.seed(3)
    first, second = np.random.permutation(10), np.random.permutation(10)
    np.random.seed(3)
    epoch1 = np.concatenate([yb.numpy() for _, yb in loader])
    epoch2 = np.concatenate([yb.numpy() for _, yb in loader])
    np.testing.assert_array_equal(epoch1, first)
    np.testing.assert_array_equal(epoch2, second)
    assert [len(yb.numpy()) for _, yb in loader] == [4, 4, 2]


def test_dataloader_keeps_float32_data_float32():
    X = np.arange(6, dtype=np.float32).reshape(3, 2)
    (xb, yb), = DataLoader(NDArrayDataset(X, np.arange(3)), batch_size=3)
    assert xb.dtype == np.float32 and yb.dtype == np.arange(3).dtype


def test_dataloader_rejects_bad_batch_size():
    with pytest.raises(ValueError):
        DataLoader(NDArrayDataset(np.zeros((3, 1))), batch_size=0)


def test_mnist_dataset_uses_the_header_image_size(tmp_path):
    pixels = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    images = write_idx(tmp_path / "img.gz", 2051, (2, 3, 4), pixels.tobytes())
    labels = write_idx(tmp_path / "lbl.gz", 2049, (2,), bytes([1, 2]))
    seen = []
    dataset = MNISTDataset(str(images), str(labels), transforms=[lambda img: seen.append(img.shape) or img])
    x, y = dataset[1]
    assert x.shape == (12,) and y == 2 and seen == [(3, 4, 1)]
    np.testing.assert_allclose(x, pixels[1].reshape(-1) / 255.0, rtol=1e-6)


def test_dataloader_wraps_a_single_array_dataset_in_a_tuple():
    class Features(ndl.data.Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, index):
            return np.arange(10, dtype=np.float64).reshape(5, 2)[index]

    batches = list(DataLoader(Features(), batch_size=2))
    assert [len(b) for b in batches] == [1, 1, 1]
    assert batches[2][0].shape == (1, 2) and batches[2][0].dtype == np.float64


def test_dataloader_batches_do_not_alias_dataset_views():
    class Rows(ndl.data.Dataset):
        """Returns views into its storage for slices (not fresh arrays)."""

        def __init__(self):
            super().__init__()
            self.storage = np.arange(12, dtype=np.float32).reshape(6, 2)

        def __len__(self):
            return 6

        def __getitem__(self, index):
            return self.storage[index.min():index.max() + 1]

    dataset = Rows()
    first = next(iter(DataLoader(dataset, batch_size=3)))[0]
    dataset.storage[:] = -1
    np.testing.assert_array_equal(first.numpy(), np.arange(6, dtype=np.float32).reshape(3, 2))


def test_ndarray_dataset_gathers_with_integer_and_boolean_indices():
    X = np.arange(20, dtype=np.float32).reshape(10, 2)
    dataset = NDArrayDataset(X, np.arange(10))
    for index in (np.array([9, 0, 4]), np.array([-1, 2], dtype=np.int32), np.arange(10) % 3 == 0):
        xs, ys = dataset[index]
        np.testing.assert_array_equal(xs, X[index])
        np.testing.assert_array_equal(ys, np.arange(10)[index])
    with pytest.raises(IndexError):
        dataset[np.array([10])]
