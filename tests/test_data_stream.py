"""data.cache: disk | none stream a folder as uint8, with the in-memory path's splits,
fingerprint and bad-image rules; auto picks by size."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest

from tunetrack.data import DataConfig, StreamedImages, _ondisk, fit_data, load_dataset
from tunetrack.errors import DataError, PipelineError
from tunetrack.space import load_pipeline

from .imagefolders import make_image_folder

pytestmark = pytest.mark.core


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "imgs", {"beach": 12, "desert": 12, "forest": 12})


def _cfg(folder: Path, tmp_path: Path, cache: str, **kw) -> DataConfig:
    return DataConfig(source=str(folder), image_size=(16, 16), cache=cache,
                      cache_dir=str(tmp_path / "cache"), **kw)


@pytest.mark.parametrize("cache", ["disk", "none"])
def test_streamed_equals_memory(folder: Path, tmp_path: Path, cache: str):
    mem = load_dataset(_cfg(folder, tmp_path, "memory"))
    got = load_dataset(_cfg(folder, tmp_path, cache))
    assert isinstance(got.x_train, StreamedImages) and got.x_train.shape == mem.x_train.shape
    assert got.fingerprint == mem.fingerprint  # registry checks hold whatever the cache mode
    for a, b in ((got.y_train, mem.y_train), (got.y_val, mem.y_val), (got.y_test, mem.y_test)):
        np.testing.assert_array_equal(a, b)
    for a, b in ((got.x_train, mem.x_train), (got.x_val, mem.x_val), (got.x_test, mem.x_test)):
        np.testing.assert_array_equal(np.asarray(a), b)
    np.testing.assert_array_equal(got.x_val[1:4], mem.x_val[1:4])
    shuffled = [4, 0, 3, 1]  # rows read sorted, handed back in the order asked
    np.testing.assert_array_equal(got.x_train[shuffled], mem.x_train[shuffled])
    assert got.x_val[2].dtype == np.float32 and got.x_val[2].shape == (16, 16, 3)
    if cache == "disk":  # decoded once as uint8, 1 byte a value, and reused
        (data,) = (tmp_path / "cache").glob("*-stream.u8")
        assert data.stat().st_size == 36 * 16 * 16 * 3
        again = load_dataset(_cfg(folder, tmp_path, cache))
        assert again.fingerprint == mem.fingerprint


def test_batches_feed_fit_and_reshuffle(folder: Path, tmp_path: Path):
    ds = load_dataset(_cfg(folder, tmp_path, "disk"))
    kwargs, val = fit_data(ds.x_train, ds.y_train, ds.x_val, ds.y_val, 5, seed=3)
    batches, per_epoch = kwargs["x"], -(-len(ds.y_train) // 5)
    # endless, read per_epoch batches an epoch: Keras keeps one iterator for the whole fit
    assert kwargs == {"x": batches, "steps_per_epoch": per_epoch, "shuffle": False}
    assert batches.num_batches is None and batches.per_epoch == per_epoch
    assert val.num_batches == val.per_epoch == -(-len(ds.y_val) // 5)  # validation: finite
    xb, yb = batches[0]
    assert xb.dtype == np.float32 and xb.shape[1:] == (16, 16, 3) and len(xb) == len(yb) == 5
    mem = load_dataset(_cfg(folder, tmp_path, "memory"))

    def epoch(k: int) -> list[list[int]]:
        return [batches[k * per_epoch + i][1].tolist() for i in range(per_epoch)]

    seen = np.concatenate(epoch(0))
    assert sorted(seen.tolist()) == sorted(ds.y_train.tolist())  # every image once an epoch
    assert sorted(np.concatenate(epoch(1)).tolist()) == sorted(seen.tolist())
    assert epoch(1) != epoch(0)  # reshuffled
    # an epoch's order is its seed's and number's, whenever it is read (prefetch reads ahead)
    again = fit_data(ds.x_train, ds.y_train, ds.x_val, ds.y_val, 5, seed=3)[0]["x"]
    assert [again[per_epoch + i][1].tolist() for i in range(per_epoch)] == epoch(1)
    # each streamed batch is exactly the in-memory images at those positions
    positions = np.sort(batches.order(0)[:5])
    np.testing.assert_array_equal(batches[0][0], mem.x_train[positions])
    # validation: every image once, in order
    assert np.concatenate([val[i][1] for i in range(val.per_epoch)]).tolist() == \
        ds.y_val.tolist()
    # one worker, no Keras enqueuer (its 0.1 s drain at every epoch's end); rows decoded from
    # the files (data.cache: none) are decoded on two threads within a batch
    assert batches.workers == 1 and val.workers == 1
    files = load_dataset(_cfg(folder, tmp_path, "none"))
    fx = fit_data(files.x_train, files.y_train, files.x_val, files.y_val, 5, seed=3)[0]["x"]
    np.testing.assert_array_equal(fx[0][0], batches[0][0])
    plain, val_plain = fit_data(mem.x_train, mem.y_train, mem.x_val, mem.y_val, 5)
    assert plain["x"] is mem.x_train and plain["batch_size"] == 5 and val_plain[0] is mem.x_val


@pytest.mark.parametrize("cache", ["disk", "none"])
def test_bad_image_follows_on_bad_image(tmp_path: Path, cache: str):
    root = make_image_folder(tmp_path / "bad", {"beach": 12, "desert": 12},
                             corrupt="truncated_jpeg")
    with pytest.raises(DataError, match=r"cannot decode image: .*broken\.jpg.*on_bad_image: skip"):
        load_dataset(_cfg(root, tmp_path, cache))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(_cfg(root, tmp_path, cache, on_bad_image="skip"))
    assert [Path(p).name for p, _ in ds.skipped] == ["broken.jpg"]
    assert any("skipped 1 undecodable" in str(w.message) for w in caught)
    mem = load_dataset(_cfg(root, tmp_path, "memory", on_bad_image="skip"))
    assert ds.fingerprint == mem.fingerprint and len(ds.y_train) == len(mem.y_train)


def test_file_changed_while_streaming_names_it(folder: Path, tmp_path: Path):
    ds = load_dataset(_cfg(folder, tmp_path, "none"))
    victim = ds.x_train.rows.paths[int(ds.x_train.index[0])]
    victim.write_bytes(b"not an image any more")
    with pytest.raises(DataError, match=rf"cannot decode image: .*{victim.name}.*was it changed"):
        ds.x_train[0:2]


def test_truncated_decode_cache_is_named(folder: Path, tmp_path: Path):
    ds = load_dataset(_cfg(folder, tmp_path, "disk"))
    (data,) = (tmp_path / "cache").glob("*-stream.u8")
    last = int(np.argmax(ds.x_train.index))
    with open(data, "r+b") as f:  # the cache lost its end after the search loaded it
        f.truncate(int(ds.x_train.index[last]) * 16 * 16 * 3 + 100)
    with pytest.raises(DataError, match=r"decode cache .*stream\.u8 is shorter than expected"):
        ds.x_train[[last]]


def test_auto_picks_by_size(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    cfg = _cfg(folder, tmp_path, "auto")
    assert _ondisk.resolve_cache(cfg, 1000, (32, 32, 3)) == "memory"
    monkeypatch.setattr(_ondisk, "available_ram", lambda: 2 * 5 * 36 * 16 * 16 * 3 - 2)
    assert isinstance(load_dataset(cfg).x_train, StreamedImages)
    monkeypatch.setattr(_ondisk, "available_ram", lambda: 2 * 5 * 36 * 16 * 16 * 3)
    assert isinstance(load_dataset(cfg).x_train, np.ndarray)
    assert _ondisk.resolve_cache(dataclasses.replace(cfg, cache="none"), 1, (1, 1, 1)) == "none"


def test_pipeline_key_is_checked(tmp_path: Path):
    (tmp_path / "s.yaml").write_text("family: mlp\n")
    path = tmp_path / "p.yaml"
    path.write_text("name: p\nspace: s.yaml\ndata: {source: digits, cache: ram}\n"
                    "training: {mixed_precision: yes_please}\n")
    with pytest.raises(PipelineError, match=r"(?s)data\.cache.*must be one of 'auto', 'memory', "
                                            r"'disk', 'none'.*mixed_precision.*must be a bool"):
        load_pipeline(path)
    path.write_text("name: p\nspace: s.yaml\ndata: {source: digits, cache: disk}\n"
                    "training: {mixed_precision: true, jit_compile: false}\n")
    p = load_pipeline(path)
    assert p.data.cache == "disk" and p.training.mixed_precision is True
    assert p.training.jit_compile is False


def test_test_split_is_judged_in_chunks(folder: Path, tmp_path: Path):
    """The registry's verdict on a streamed test split reads it a chunk at a time, and scores
    exactly what the in-memory split scores."""
    from types import SimpleNamespace

    from tunetrack.registry import _evaluation

    mem = load_dataset(_cfg(folder, tmp_path, "memory"))
    streamed = load_dataset(_cfg(folder, tmp_path, "disk"))
    seen: list[tuple[type, int]] = []

    class Mean:  # a stand-in classifier: class scores from each image's mean colour
        prep = SimpleNamespace(class_names=mem.class_names)

        def probabilities(self, images: np.ndarray) -> np.ndarray:
            seen.append((type(images), len(images)))
            scores = np.asarray(images, dtype=np.float64).mean(axis=(1, 2))
            return np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)

    whole = _evaluation.evaluate(Mean(), mem)  # type: ignore[arg-type]
    assert seen == [(np.ndarray, len(mem.y_test))]
    seen.clear()
    chunked = _evaluation.probabilities(Mean(), streamed.x_test, chunk=3)  # type: ignore[arg-type]
    assert len(seen) == -(-len(streamed.y_test) // 3) and len(seen) > 1
    assert all(kind is np.ndarray and n <= 3 for kind, n in seen)
    assert chunked.argmax(axis=1).tolist() == whole.predicted.tolist()
    seen.clear()
    assert _evaluation.evaluate(Mean(), streamed).accuracy == whole.accuracy  # type: ignore[arg-type]
    assert all(n <= _evaluation.TEST_CHUNK for _, n in seen)
