"""Min/max-preserving downsampling of long curves."""
import numpy as np

from service.api.series import min_max_downsample


def test_short_series_is_returned_as_is():
    x, y = np.arange(10), np.linspace(1, 0, 10)
    sx, sy = min_max_downsample(x, y, 100)
    assert sx is x and sy is y


def test_long_series_fits_and_keeps_every_spike_and_both_ends_of_the_range():
    rng = np.random.default_rng(0)
    x = np.arange(100_000)
    y = 1.0 / (1 + x / 1000) + rng.normal(0, 0.01, x.size)
    y[[1234, 56_789, 99_000]] = [5.0, 7.0, -3.0]  # single-step spikes
    sx, sy = min_max_downsample(x, y, 1000)
    assert len(sx) <= 1000 and np.all(np.diff(sx) > 0)
    assert {1234, 56_789, 99_000} <= set(sx.tolist())
    assert sy.max() == 7.0 and sy.min() == -3.0
    assert np.array_equal(sy, y[sx])  # real points, not averages


def test_odd_sizes_cover_the_whole_range():
    x = np.arange(1001)
    y = np.sin(x / 50.0)
    sx, _ = min_max_downsample(x, y, 7)
    assert len(sx) <= 7 and sx[0] < 1001 // 3 and sx[-1] > 2 * 1001 // 3
