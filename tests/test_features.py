"""Colour / HoG / LBP extraction: hand-computed values, lengths equal the length functions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.feature import hog, local_binary_pattern

from tunetrack.models import features as F
from tunetrack.models.features import (
    colour_features,
    colour_length,
    hog_features,
    hog_length,
    lbp_features,
    lbp_length,
)

RED, BLUE, MIX = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.3, 0.6, 0.9)


def _image(rows: list[list[tuple[float, ...]]]) -> np.ndarray:
    return np.asarray([rows], dtype=np.float32)


# ----------------------------------------------------------------------------- colour

def test_colour_hand_computed_2x3() -> None:
    # levels 4: red -> (3,0,0) index 48, blue -> (0,0,3) index 3, mix -> (1,2,3) index 27
    img = _image([[RED, BLUE, RED], [MIX, RED, BLUE]])
    got = colour_features(img, k=4, levels=4)
    want = [0.875, 0.125, 0.125, 3 / 6,
            0.125, 0.125, 0.875, 2 / 6,
            0.375, 0.625, 0.875, 1 / 6,
            0.0, 0.0, 0.0, 0.0]  # only 3 distinct colours: rank 4 is zeros
    assert got.dtype == np.float32 and got.shape == (1, colour_length(4))
    np.testing.assert_allclose(got[0], want, rtol=1e-6)
    np.testing.assert_allclose(colour_features(img)[0], want[:8], rtol=1e-6)  # k=2 default


def test_colour_ties_go_to_lower_colour_index() -> None:
    img = _image([[RED, RED, RED], [BLUE, BLUE, BLUE]])  # 3 each: blue (3) before red (48)
    got = colour_features(img, k=2)[0]
    np.testing.assert_allclose(got, [0.125, 0.125, 0.875, 0.5, 0.875, 0.125, 0.125, 0.5])


def test_colour_grayscale_is_r_equals_g_equals_b_and_levels() -> None:
    img = np.asarray([[[[0.0], [1.0]], [[1.0], [0.49]]]], dtype=np.float32)  # 2x2x1
    got = colour_features(img, k=2, levels=2)[0]
    np.testing.assert_allclose(got, [0.25, 0.25, 0.25, 0.5, 0.75, 0.75, 0.75, 0.5])  # tie
    rgb = np.repeat(img, 3, axis=-1)
    np.testing.assert_array_equal(colour_features(rgb, 2, 2), colour_features(img, 2, 2))


def test_colour_many_levels_uses_the_sorting_path() -> None:
    img = _image([[RED, BLUE, RED], [MIX, RED, BLUE]])
    got = colour_features(img, k=2, levels=64)[0]  # 64**3 colours: no per-image table
    np.testing.assert_allclose(got, [63.5 / 64, 0.5 / 64, 0.5 / 64, 0.5,
                                     0.5 / 64, 0.5 / 64, 63.5 / 64, 2 / 6], rtol=1e-6)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 5), h=st.integers(1, 6), w=st.integers(1, 6),
       levels=st.integers(2, 6), k=st.integers(1, 5), seed=st.integers(0, 1000))
def test_colour_bincount_and_sorting_paths_agree(n: int, h: int, w: int, levels: int, k: int,
                                                 seed: int) -> None:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, 3, (n, h * w)) * rng.integers(1, levels ** 3 // 3, (n, 1))
    a = F._top_colours_bincount(idx, levels ** 3, k)
    b = F._top_colours_sorted(idx, levels ** 3, k)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(np.where(a[1] > 0, a[0], 0), np.where(b[1] > 0, b[0], 0))


def test_colour_fractions_sum_to_at_most_one_and_batch_is_per_image() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((7, 9, 11, 3), dtype=np.float32)
    got = colour_features(x, k=5)
    assert got.shape == (7, 20)
    assert np.all(got[:, 3::4].sum(axis=1) <= 1.0 + 1e-6)
    np.testing.assert_array_equal(got[3], colour_features(x[3:4], k=5)[0])
    assert colour_features(np.zeros((0, 4, 4, 3), np.float32), k=2).shape == (0, 8)


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 3)), np.zeros((1, 4, 4, 2))])
def test_features_reject_bad_shapes(bad: np.ndarray) -> None:
    for fn in (colour_features, hog_features, lbp_features):
        with pytest.raises(ValueError, match=r"images must be \(N, H, W, C\) with C 1 or 3"):
            fn(bad)


def test_colour_rejects_bad_parameters() -> None:
    x = np.zeros((1, 2, 2, 3), np.float32)
    with pytest.raises(ValueError, match="levels must be >= 2, got 1"):
        colour_features(x, levels=1)
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        colour_features(x, k=0)


# ----------------------------------------------------------------------------- HoG

@pytest.mark.parametrize("h,w,o,p,c", [(8, 8, 9, 4, 2), (32, 32, 9, 4, 2), (28, 28, 8, 7, 1),
                                       (30, 17, 6, 4, 3), (24, 40, 12, 8, 2), (9, 13, 4, 3, 2)])
@pytest.mark.parametrize("channels", [1, 3])
def test_hog_length_matches_the_formula(h: int, w: int, o: int, p: int, c: int,
                                        channels: int) -> None:
    x = np.random.default_rng(1).random((2, h, w, channels), dtype=np.float32)
    got = hog_features(x, orientations=o, pixels_per_cell=p, cells_per_block=c)
    assert got.dtype == np.float32
    assert got.shape == (2, hog_length(h, w, o, p, c))
    assert hog_length(h, w, o, p, c) == (h // p - c + 1) * (w // p - c + 1) * c * c * o


def test_hog_equals_skimage_per_image() -> None:
    x = np.random.default_rng(2).random((3, 16, 16, 3), dtype=np.float32)
    want = hog(x[1], orientations=9, pixels_per_cell=(4, 4), cells_per_block=(2, 2),
               feature_vector=True, channel_axis=-1)
    np.testing.assert_allclose(hog_features(x)[1], want, rtol=1e-5)
    gray = x[..., :1]
    want = hog(gray[2, ..., 0], orientations=9, pixels_per_cell=(4, 4), cells_per_block=(2, 2),
               feature_vector=True)
    np.testing.assert_allclose(hog_features(gray)[2], want, rtol=1e-5)


def test_hog_too_small_image_is_refused() -> None:
    assert hog_length(7, 32, 9, 4, 2) == 0
    with pytest.raises(ValueError, match="HoG needs at least .* = 8 pixels per side, got a 7x32"):
        hog_features(np.zeros((1, 7, 32, 1), np.float32))


# ----------------------------------------------------------------------------- LBP

@pytest.mark.parametrize("h,w", [(8, 8), (28, 28), (17, 9)])
@pytest.mark.parametrize("points,radius,grid", [(8, 1, 1), (8, 1, 2), (16, 2, 3), (4, 1, 4)])
def test_lbp_length_and_normalised_cells(h: int, w: int, points: int, radius: int,
                                         grid: int) -> None:
    x = np.random.default_rng(3).random((2, h, w, 3), dtype=np.float32)
    got = lbp_features(x, points=points, radius=radius, grid=grid)
    assert got.dtype == np.float32
    assert got.shape == (2, lbp_length(points, grid)) == (2, grid * grid * (points + 2))
    np.testing.assert_allclose(got.reshape(2, grid * grid, points + 2).sum(-1), 1.0, rtol=1e-5)


def test_lbp_equals_skimage_histograms_on_array_split_cells() -> None:
    x = np.random.default_rng(4).random((1, 10, 7, 1), dtype=np.float32)
    g = np.rint(x[0, ..., 0] * 255).astype(np.uint8)
    codes = local_binary_pattern(g, 8, 1, method="uniform").astype(int)
    want = []
    for rows in np.array_split(codes, 2, axis=0):
        for cell in np.array_split(rows, 2, axis=1):
            want += list(np.bincount(cell.ravel(), minlength=10) / cell.size)
    np.testing.assert_allclose(lbp_features(x, 8, 1, 2)[0], want, rtol=1e-6)


def test_lbp_rgb_uses_luminance_and_empty_cells_are_zero() -> None:
    gray = np.random.default_rng(5).random((2, 6, 6, 1), dtype=np.float32)
    np.testing.assert_allclose(lbp_features(np.repeat(gray, 3, -1)), lbp_features(gray),
                               atol=1e-6)
    tiny = lbp_features(np.random.default_rng(6).random((1, 2, 2, 1), np.float32), grid=3)
    cells = tiny.reshape(9, 10).sum(-1)
    assert sorted(cells.tolist()) == [0.0] * 5 + [1.0] * 4


def test_threaded_extraction_equals_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(7).random((6, 12, 12, 3), dtype=np.float32)
    loop_h, loop_l = hog_features(x), lbp_features(x)
    monkeypatch.setattr(F, "_POOL_MIN_IMAGES", 2)
    np.testing.assert_array_equal(hog_features(x), loop_h)
    np.testing.assert_array_equal(lbp_features(x), loop_l)
