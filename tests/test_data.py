"""Data loading: folders, digits, keras (monkeypatched), splits, fingerprints, the decode cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tunetrack import data as D
from tunetrack.data import DataConfig, DataWarning, _sources, _splits, load_dataset, load_images
from tunetrack.errors import ConfigError, DataError

try:  # tests/ is a package; fall back for a plain rootdir-on-path layout
    from tests.imagefolders import make_image_folder
except ImportError:  # pragma: no cover
    from imagefolders import make_image_folder


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default cache lives under the current directory: keep it in tmp_path."""
    monkeypatch.chdir(tmp_path)


def _cfg(source: object, **kw: object) -> DataConfig:
    return DataConfig(str(source), **kw)


def _all_y(ds: D.Dataset) -> np.ndarray:
    return np.concatenate([ds.y_train, ds.y_val, ds.y_test])


def _every_class_in_every_split(ds: D.Dataset) -> bool:
    return all(set(y.tolist()) == set(range(ds.num_classes))
               for y in (ds.y_train, ds.y_val, ds.y_test))


# ----------------------------------------------------------------------------- folders

def test_rgb_folder_mixed_sizes_all_formats_and_ignored_files(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "img", classes={"beach": 7, "desert": 7},
                             formats=("png", "jpg", "jpeg", "bmp", "gif", "tif", "tiff"),
                             extras=True)
    ds = load_dataset(_cfg(root))
    assert ds.class_names == ["beach", "desert"] and ds.image_shape == (32, 32, 3)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.x_train.shape[1:] == (32, 32, 3)
    assert np.bincount(_all_y(ds)).tolist() == [7, 7]  # .txt/.csv/hidden files ignored
    assert all(0.0 <= a.min() and a.max() <= 1.0 for a in (ds.x_train, ds.x_val, ds.x_test))
    assert _every_class_in_every_split(ds) and ds.skipped == [] and ds.source == str(root)
    # the pattern survives decoding: beach is blue on top, desert is orange all over
    x, y = ds.x_train, ds.y_train
    assert x[y == 0][:, :8, :, 2].mean() > 0.7 and x[y == 1][:, :8, :, 0].mean() > 0.7


def test_grayscale_folder_and_color_modes(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "g", mode="L")
    rgb = load_dataset(_cfg(root, image_size=(20, 16)))
    assert rgb.image_shape == (20, 16, 3) and rgb.x_train.shape[1:] == (20, 16, 3)
    np.testing.assert_array_equal(rgb.x_train[..., 0], rgb.x_train[..., 2])  # gray as RGB
    gray = load_dataset(_cfg(root, color_mode="grayscale", image_size=(20, 16)))
    assert gray.image_shape == (20, 16, 1) and gray.x_test.shape[1:] == (20, 16, 1)


def test_default_fixture_six_per_class_fills_every_split(tmp_path: Path) -> None:
    ds = load_dataset(_cfg(make_image_folder(tmp_path / "six")))
    assert _every_class_in_every_split(ds) and len(_all_y(ds)) == 12


@pytest.mark.parametrize("corrupt,match", [
    ("truncated_jpeg", r"cannot decode image: .*broken\.jpg: OSError: image file is truncated"),
    ("text_as_png", r"cannot decode image: .*notes\.png: not a recognised image format"),
])
def test_corrupt_file_is_an_error(tmp_path: Path, corrupt: str, match: str) -> None:
    root = make_image_folder(tmp_path / "c", classes={"beach": 8, "desert": 8}, corrupt=corrupt)
    with pytest.raises(DataError, match=match):
        load_dataset(_cfg(root))
    with pytest.raises(DataError, match=match):  # also when it comes from the cache
        load_dataset(_cfg(root))


def test_corrupt_file_skipped_with_a_warning(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "c", classes={"beach": 8, "desert": 8},
                             corrupt="truncated_jpeg")
    with pytest.warns(DataWarning, match=r"skipped 1 undecodable image\(s\): .*broken\.jpg"):
        ds = load_dataset(_cfg(root, on_bad_image="skip"))
    assert [Path(p).name for p, _ in ds.skipped] == ["broken.jpg"]
    assert "truncated" in ds.skipped[0][1] and ds.summary()["skipped"] == 1
    assert np.bincount(_all_y(ds)).tolist() == [8, 8]


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"image folder not found: .*nope"):
        load_dataset(_cfg(tmp_path / "nope"))


def test_source_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f.png").write_text("x")
    with pytest.raises(DataError, match=r"image folder source is not a directory: .*f\.png"):
        load_dataset(_cfg(tmp_path / "f.png"))


def test_one_class_folder(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "one", classes={"beach": 8}, extras=True)
    with pytest.raises(DataError, match=r"at least 2 classes; found 1 class folder: beach$"):
        load_dataset(_cfg(root))
    (tmp_path / "zero").mkdir()
    with pytest.raises(DataError, match=r"found 0 class folders$"):
        load_dataset(_cfg(tmp_path / "zero"))


def test_empty_class_folder(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "e", classes={"beach": 8, "desert": 8})
    (root / "forest").mkdir()
    (root / "forest" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"class folder .*forest has no images \(looked for "
                                        r"\.png, \.jpg"):
        load_dataset(_cfg(root))


def test_class_with_too_few_images(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "few", classes={"beach": 2, "desert": 9})
    with pytest.raises(DataError, match=r"class 'beach' has 2 images, too few for the splits "
                                        r"\(test_split=0\.2, validation_split=0\.2\).*needs at "
                                        r"least 8 images"):
        load_dataset(_cfg(root))


def test_too_few_is_raised_before_decoding(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_image_folder(tmp_path / "few", classes={"beach": 2, "desert": 9})
    monkeypatch.setattr(Image, "open", lambda *a, **k: pytest.fail("decoded before checks"))
    with pytest.raises(DataError, match="too few"):
        load_dataset(_cfg(root, cache_dir=False))


def test_only_corrupt_files_left_in_a_class(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "c", classes={"beach": 8, "desert": 8})
    for p in (root / "beach").iterdir():
        p.write_text("garbage")
    with pytest.warns(DataWarning), pytest.raises(DataError, match=r"class folder .*beach has "
                                                                    r"no decodable images"):
        load_dataset(_cfg(root, on_bad_image="skip"))


def test_gif_first_frame_and_load_images(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (10, 10), c) for c in ((255, 0, 0), (0, 0, 255))]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    x, errors = load_images([gif, bad, gif], image_size=(4, 6))
    assert x.shape == (2, 4, 6, 3) and x.dtype == np.float32
    assert x[..., 0].min() > 0.9 and x[..., 2].max() < 0.1  # red: the first frame
    assert errors == [(str(bad), "not a recognised image format")]
    with pytest.raises(DataError, match="color_mode must be one of 'rgb', 'grayscale', got 'L'"):
        load_images([gif], color_mode="L")


def test_load_images_decodes_like_the_folder_loader(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "img", classes={"beach": 8, "desert": 8})
    ds = load_dataset(_cfg(root, test_split=0.25, validation_split=0.25, cache_dir=False))
    paths = sorted(p for p in root.rglob("*") if p.is_file())
    x, errors = load_images(paths, (32, 32), "rgb")
    assert errors == [] and x.shape == (16, 32, 32, 3)
    found = {a.tobytes() for a in x}
    assert all(a.tobytes() in found for a in np.concatenate([ds.x_train, ds.x_val, ds.x_test]))


# ----------------------------------------------------------------------------- cache

def _count_opens(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    real = Image.open

    def counting(*a: object, **k: object) -> Image.Image:
        calls[0] += 1
        return real(*a, **k)

    monkeypatch.setattr(Image, "open", counting)
    return calls


def test_cache_is_hit_the_second_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_image_folder(tmp_path / "img", classes={"beach": 8, "desert": 8})
    calls = _count_opens(monkeypatch)
    first = load_dataset(_cfg(root))
    assert calls[0] == 16
    assert list((tmp_path / ".tunetrack" / "cache").glob("folder-*.npz"))  # default location
    second = load_dataset(_cfg(root))
    assert calls[0] == 16 and second.fingerprint == first.fingerprint
    np.testing.assert_array_equal(second.x_test, first.x_test)
    load_dataset(_cfg(root, image_size=(16, 16)))  # another size: another cache entry
    assert calls[0] == 32
    victim = root / "beach" / sorted(os.listdir(root / "beach"))[0]
    os.utime(victim, ns=(1, 1))  # a changed file (mtime) invalidates the entry
    load_dataset(_cfg(root))
    assert calls[0] == 48


def test_cache_can_be_disabled_or_moved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_image_folder(tmp_path / "img", classes={"beach": 8, "desert": 8})
    calls = _count_opens(monkeypatch)
    load_dataset(_cfg(root, cache_dir=False))
    load_dataset(_cfg(root, cache_dir=False))
    assert calls[0] == 32 and not (tmp_path / ".tunetrack").exists()
    load_dataset(_cfg(root, cache_dir=tmp_path / "elsewhere"))
    assert len(list((tmp_path / "elsewhere").glob("*.npz"))) == 1


# ----------------------------------------------------------------------------- digits

def test_digits_shapes_range_and_the_255_over_16_rule() -> None:
    from sklearn.datasets import load_digits

    ds = load_dataset(DataConfig("digits"))
    assert ds.image_shape == (8, 8, 1) and ds.class_names == [str(i) for i in range(10)]
    x = np.concatenate([ds.x_train, ds.x_val, ds.x_test])
    assert x.shape == (1797, 8, 8, 1) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_array_equal(x * 16, np.rint(x * 16))  # v*255/16 as 8-bit = v/16
    raw = load_digits().images
    assert np.sort((x[..., 0] * 16).reshape(1797, -1), axis=0).tobytes() == \
        np.sort(raw.reshape(1797, -1), axis=0).astype(np.float32).tobytes()
    assert _every_class_in_every_split(ds)
    assert ds.summary()["split_sizes"] == {"train": 1149, "val": 288, "test": 360}


def test_digits_resized_and_rgb() -> None:
    ds = load_dataset(DataConfig("digits", image_size=(16, 12), color_mode="rgb"))
    assert ds.image_shape == (16, 12, 3) and ds.x_val.shape[1:] == (16, 12, 3)
    assert 0.0 <= ds.x_val.min() and ds.x_val.max() <= 1.0
    np.testing.assert_array_equal(ds.x_val[..., 0], ds.x_val[..., 1])


# ----------------------------------------------------------------------------- splits

def test_seeded_reproducible_and_test_split_sealed() -> None:
    a, b = load_dataset(DataConfig("digits")), load_dataset(DataConfig("digits"))
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert a.fingerprint == b.fingerprint and len(a.fingerprint) == 64
    c = load_dataset(DataConfig("digits", seed=1))
    assert not np.array_equal(a.x_test, c.x_test) and c.fingerprint != a.fingerprint
    d = load_dataset(DataConfig("digits", validation_split=0.3))
    np.testing.assert_array_equal(a.x_test, d.x_test)  # val changes, test does not
    assert len(d.y_val) > len(a.y_val) and d.fingerprint != a.fingerprint


def test_fingerprint_ignores_the_folder_path_but_not_the_config(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "a", classes={"beach": 8, "desert": 8})
    copy = tmp_path / "b"
    shutil.copytree(root, copy)
    fa = load_dataset(_cfg(root)).fingerprint
    assert load_dataset(_cfg(copy)).fingerprint == fa
    assert load_dataset(_cfg(root, image_size=(16, 16))).fingerprint != fa
    assert load_dataset(_cfg(root, color_mode="grayscale")).fingerprint != fa
    sorted((copy / "desert").iterdir())[0].unlink()
    assert load_dataset(_cfg(copy)).fingerprint != fa


@settings(max_examples=40, deadline=None)
@given(extra=st.lists(st.integers(0, 30), min_size=2, max_size=6),
       test=st.sampled_from([0.1, 0.15, 0.2, 0.25, 0.3, 0.5]),
       val=st.sampled_from([0.1, 0.2, 0.25, 0.4]), seed=st.integers(0, 10_000))
def test_min_images_per_class_is_enough_for_every_split(extra: list[int], test: float,
                                                        val: float, seed: int) -> None:
    need = D.min_images_per_class(test, val)
    y = np.repeat(np.arange(len(extra)), [need + e for e in extra])
    classes = [str(i) for i in range(len(extra))]
    parts = _splits.split(y, classes, test, val, seed)
    assert all(set(y[p].tolist()) == set(range(len(extra))) for p in parts)
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(y)))


# ----------------------------------------------------------------------------- keras

def _fake_keras(rgb: bool, n_train: int = 60, n_test: int = 20):
    rng = np.random.default_rng(0)
    shape = (32, 32, 3) if rgb else (28, 28)

    def loader(name: str):
        xa = rng.integers(0, 256, (n_train, *shape), dtype=np.uint8)
        xt = rng.integers(0, 256, (n_test, *shape), dtype=np.uint8)
        ya, yt = np.arange(n_train) % 10, np.arange(n_test) % 10
        return (xa, ya.reshape(-1, 1) if rgb else ya), (xt, yt.reshape(-1, 1) if rgb else yt)

    return loader


def test_keras_mnist_uses_its_own_test_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sources, "keras_loader", _fake_keras(rgb=False))
    ds = load_dataset(DataConfig("keras:mnist", validation_split=0.25))
    assert ds.image_shape == (28, 28, 1) and ds.class_names[:2] == ["0", "1"]
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (45, 15, 20)
    np.testing.assert_array_equal(ds.y_test, np.arange(20) % 10)
    assert _every_class_in_every_split(ds) and ds.x_test.max() <= 1.0


def test_keras_cifar10_modes_and_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sources, "keras_loader", _fake_keras(rgb=True))
    ds = load_dataset(DataConfig("keras:cifar10", validation_split=0.25))
    assert ds.image_shape == (32, 32, 3) and ds.class_names[0] == "airplane"
    ds = load_dataset(DataConfig("keras:cifar10", validation_split=0.25,
                                 color_mode="grayscale", image_size=(16, 16)))
    assert ds.image_shape == (16, 16, 1) and ds.x_train.shape[1:] == (16, 16, 1)


def test_keras_unknown_name_and_load_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError, match=r"unknown keras dataset 'mnsit': allowed are keras:mnist"
                                        r", keras:fashion_mnist, keras:cifar10 \(did you mean "
                                        r"'mnist'\?\)"):
        load_dataset(DataConfig("keras:mnsit"))

    def offline(name: str):
        raise OSError("URL fetch failure")

    monkeypatch.setattr(_sources, "keras_loader", offline)
    with pytest.raises(DataError, match=r"cannot load keras:mnist: OSError: URL fetch failure"):
        load_dataset(DataConfig("keras:mnist"))


# ----------------------------------------------------------------------------- config, imports

@pytest.mark.parametrize("kw,match", [
    ({"color_mode": "gray"}, r"data\.color_mode: must be one of 'rgb', 'grayscale', got 'gray' "
                             r"\(did you mean 'grayscale'\?\)"),
    ({"test_split": 1.0}, r"data\.test_split: must be a fraction with 0 < test_split < 1, "
                          r"got 1\.0"),
    ({"validation_split": 0}, r"0 < validation_split < 1, got 0"),
    ({"on_bad_image": "ignore"}, r"data\.on_bad_image: must be one of 'error', 'skip'"),
    ({"image_size": (32, 0)}, r"data\.image_size: must be \[height, width\] with positive"),
])
def test_bad_config(kw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_dataset(DataConfig("digits", **kw))


def test_summary_is_json_ready(tmp_path: Path) -> None:
    ds = load_dataset(_cfg(make_image_folder(tmp_path / "s", classes={"beach": 8, "desert": 8})))
    s = json.loads(json.dumps(ds.summary()))
    assert s["class_names"] == ["beach", "desert"] and s["image_shape"] == [32, 32, 3]
    assert sum(s["split_sizes"].values()) == 16 and s["fingerprint"] == ds.fingerprint
    assert sum(s["class_counts"]["test"].values()) == s["split_sizes"]["test"]


def test_imports_pull_in_no_tensorflow_or_keras() -> None:
    """Loading data and extracting hand-made features must not pay for a deep-learning import.

    The child also runs a feature family end to end (``featurize``), so a keras import hidden
    behind a call is caught too. Only top-level package names are printed.
    """
    code = textwrap.dedent("""\
        import json, sys
        import numpy as np
        import tunetrack.data, tunetrack.models, tunetrack.models.features
        from tunetrack.models import featurize, input_shape
        images = np.zeros((2, 16, 16, 3), dtype=np.float32)
        for family in ("colour", "hog", "lbp"):
            shape = input_shape(family, {}, images.shape[1:])
            assert featurize(family, {}, images).shape == (2, *shape), family
        heavy = {"tensorflow", "keras", "keras_tuner", "mlflow", "jax", "torch"}
        print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & heavy)))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout) == []


def test_data_config_is_the_pipelines_data_section_and_round_trips_through_json() -> None:
    from dataclasses import FrozenInstanceError, asdict

    from tunetrack.space import DataConfig as SpaceDataConfig
    from tunetrack.space.pipeline import Pipeline

    assert DataConfig is SpaceDataConfig
    assert typing.get_type_hints(Pipeline)["data"] is DataConfig
    cfg = DataConfig("digits", image_size=(16, 12), color_mode="rgb", seed=3)
    logged = json.loads(json.dumps(asdict(cfg)))  # what the search logs as data_config.json
    assert logged == {"source": "digits", "image_size": [16, 12], "color_mode": "rgb",
                      "validation_split": 0.2, "test_split": 0.2, "seed": 3,
                      "on_bad_image": "error", "cache_dir": None, "cache": "auto"}
    rebuilt = DataConfig(**{**logged, "image_size": tuple(logged["image_size"])})
    assert rebuilt == cfg
    assert load_dataset(rebuilt).fingerprint == load_dataset(cfg).fingerprint
    with pytest.raises(FrozenInstanceError):
        cfg.seed = 4  # type: ignore[misc]
