"""Data specs -> arrays: generators, validation splits, uploaded .npz and MNIST errors."""
import io

import numpy as np
import pytest

from service.specs import validation_split_sizes
from service.training import TrainingError, check_fits_model, load_training_data
from service.training.data import read_npz
from service.training.generators import spirals, teacher


def no_fetch(dataset_id):
    raise AssertionError("no dataset expected")


def load(data, seed=0, fetch=no_fetch, mnist_dir=None):
    return load_training_data(data, seed, mnist_dir=mnist_dir, fetch_dataset=fetch)


@pytest.mark.parametrize("make", [lambda s: spirals(300, 3, 0.2, s), lambda s: teacher(300, 5, 4, 16, s)])
def test_generators_are_deterministic_per_seed_and_non_trivial(make):
    x1, y1 = make(1)
    x2, y2 = make(1)
    x3, y3 = make(2)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert not np.array_equal(x1, x3)
    assert x1.dtype == np.float32 and y1.dtype == np.int64 and len(x1) == len(y1) == 300
    counts = np.bincount(y1)
    assert len(counts) >= 3 and counts.min() >= 20  # every class present, none dominates
    assert np.isfinite(x1).all() and x1.std() > 0.1


def test_teacher_labels_are_a_fixed_function_of_the_inputs():
    x_small, y_small = teacher(50, 5, 4, 16, seed=3)
    x_big, y_big = teacher(500, 5, 4, 16, seed=3)
    # Same teacher for any n_samples: a nearest-neighbour on the big sample mostly agrees.
    nearest = np.argmin(((x_small[:, None, :] - x_big[None, :, :]) ** 2).sum(-1), axis=1)
    assert np.mean(y_big[nearest] == y_small) > 0.4


def leave_one_out_1nn_accuracy(x, y):
    distances = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)  # (N, N)
    np.fill_diagonal(distances, np.inf)
    return np.mean(y[distances.argmin(axis=1)] == y)


@pytest.mark.parametrize("make", [lambda: spirals(300, 3, 0.05, 0), lambda: teacher(300, 2, 3, 8, 0)],
                         ids=["spirals", "teacher"])
def test_labels_follow_the_inputs(make):
    x, y = make()
    assert leave_one_out_1nn_accuracy(x, y) > 0.8  # learnable structure...
    shuffled = np.random.default_rng(0).permutation(y)
    assert leave_one_out_1nn_accuracy(x, shuffled) < 0.6  # ...that random labels do not have


def test_fraction_validation_split_follows_the_training_seed():
    data = {"type": "inline", "x": [[float(i)] for i in range(10)], "y": [i % 2 for i in range(10)],
            "validation": {"type": "fraction", "fraction": 0.3}}
    split = load(data, seed=5)
    n_train, n_val = validation_split_sizes(10, 0.3)
    perm = np.random.default_rng(5).permutation(10)
    assert split.x_val[:, 0].tolist() == perm[:n_val].tolist()
    assert split.x_train[:, 0].tolist() == perm[n_val:].tolist() and len(split.x_train) == n_train
    assert not np.array_equal(load(data, seed=6).x_val, split.x_val)


def test_validation_from_separate_data():
    data = {"type": "spirals", "n_samples": 40, "n_classes": 2, "noise": 0.1, "seed": 0,
            "validation": {"type": "data", "data": {"type": "spirals", "n_samples": 10, "n_classes": 2,
                                                    "noise": 0.1, "seed": 9}}}
    split = load(data)
    assert split.x_train.shape == (40, 2) and split.x_val.shape == (10, 2)


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_uploaded_dataset_is_read_without_pickle():
    blob = npz_bytes(x=np.ones((4, 3)), y=np.array([0, 1, 2, 1]))
    split = load({"type": "dataset", "id": "d1"}, fetch=lambda i: blob)
    assert split.x_train.dtype == np.float32 and split.y_train.tolist() == [0, 1, 2, 1]
    with pytest.raises(TrainingError, match="readable"):
        read_npz(npz_bytes(x=np.array([{"a": 1}], dtype=object), y=np.array([0])), "dataset d2")
    floats = npz_bytes(x=np.ones((2, 2)), y=np.array([0.5, 1.0]))
    with pytest.raises(TrainingError, match="integer class labels"):
        load({"type": "dataset", "id": "d3"}, fetch=lambda i: floats)
    regression = load_training_data({"type": "dataset", "id": "d3"}, 0, mnist_dir=None,
                                    fetch_dataset=lambda i: floats, regression=True)
    assert regression.y_train.dtype == np.float32 and regression.y_train.shape == (2, 1)
    with pytest.raises(TrainingError, match="NaN"):
        read_npz(npz_bytes(x=np.array([[np.nan]]), y=np.array([0])), "dataset d4")


def test_data_that_does_not_fit_the_model_fails_clearly():
    split = load({"type": "inline", "x": [[1.0, 2.0]], "y": [3]})
    with pytest.raises(TrainingError, match="2 features but the model expects 3"):
        check_fits_model(split, 3, 4)
    with pytest.raises(TrainingError, match=r"\[0, 3\)"):
        check_fits_model(split, 2, 3)
    check_fits_model(split, 2, 4)


def test_mnist_without_files_fails_with_a_message(tmp_path):
    with pytest.raises(TrainingError, match="mnist_dir"):
        load({"type": "mnist", "split": "train", "limit": None})
    with pytest.raises(TrainingError, match="missing"):
        load({"type": "mnist", "split": "test", "limit": 5}, mnist_dir=tmp_path)


def test_linear_regression_data_and_standardize_fitted_on_the_training_split_only():
    data = {"type": "linear", "n_samples": 200, "n_features": 3, "n_targets": 2, "noise": 0.1, "seed": 4,
            "validation": {"type": "fraction", "fraction": 0.25}, "preprocess": {"type": "standardize"}}
    split = load_training_data(data, 0, mnist_dir=None, fetch_dataset=no_fetch, regression=True)
    assert split.x_train.shape == (150, 3) and split.y_train.shape == (150, 2)
    assert split.y_train.dtype == np.float32 and split.x_train.dtype == np.float32
    np.testing.assert_allclose(split.x_train.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(split.x_train.std(axis=0), 1, atol=1e-5)
    assert np.abs(split.x_val.mean(axis=0)).max() > 1e-4  # validation rows were not part of the fit
    raw = load_training_data({**data, "preprocess": {"type": "none"}}, 0, mnist_dir=None,
                             fetch_dataset=no_fetch, regression=True)
    mean = np.asarray(split.preprocess["mean"])
    np.testing.assert_allclose(raw.x_train.astype(np.float64).mean(axis=0), mean, rtol=1e-12)


def test_scale_preprocess_multiplies():
    split = load({"type": "inline", "x": [[255.0, 0.0]], "y": [1], "preprocess": {"type": "scale", "factor": 1 / 255}})
    assert split.x_train.tolist() == [[1.0, 0.0]]
    assert split.preprocess == {"type": "scale", "factor": 1 / 255}


def test_uploaded_images_are_flattened_and_must_match_the_input_shape():
    images = np.random.default_rng(0).random((10, 2, 3, 4)).astype(np.float32)  # (N, C, H, W)
    buffer = io.BytesIO()
    np.savez(buffer, x=images, y=np.arange(10) % 3)
    data = load({"type": "dataset", "id": "d", "validation": {"type": "fraction", "fraction": 0.2}},
                fetch=lambda dataset_id: buffer.getvalue())
    assert data.image_shape == (2, 3, 4) and data.x_train.shape == (8, 24)
    assert data.x_val.shape == (2, 24)
    check_fits_model(data, 24, 3, (2, 3, 4))
    check_fits_model(data, 24, 3)  # a model of rows takes the flattened images
    with pytest.raises(TrainingError, match=r"\(C, H, W\) = \(2, 3, 4\).*\[4, 3, 2\]"):
        check_fits_model(data, 24, 3, (4, 3, 2))
