"""Features made elsewhere: imported into a store, trained on with bin/train, grounded with --features."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from conftest import REPO, command

from hscnet.annotations import load_paragraphs
from hscnet.common.errors import InputError
from hscnet.extract.imported import import_features, read_feature_file
from hscnet.extract.store import FeatureStore
from hscnet.grounder import Grounder

CLIP_DIM = 512


@pytest.fixture(scope="module")
def clip_like(small_world, tmp_path_factory):
    """The test world's videos as 512-d features of another network: its C3D clips through a fixed random
    projection, written the way other toolkits write them, one [D, T] .npy per video."""
    folder, _ = small_world
    out = tmp_path_factory.mktemp("clip-like")
    store = FeatureStore(folder / "features")
    projection = np.random.default_rng(7).standard_normal((4096, CLIP_DIM)).astype(np.float32) / 64
    for video in sorted(store.ids()):
        np.save(out / f"{video}.npy", (np.asarray(store.read(video), np.float32) @ projection).T)
    return out


def test_a_store_imported_from_512_d_files_trains_with_bin_train_and_grounds_with_features(
    small_world, clip_like, tmp_path
):
    folder, splits = small_world
    captions = folder / "annotations" / "train.jsonl"
    importing = [
        "--import",
        str(clip_like),
        "--transposed",
        "--label",
        "clip-vit-b32",
        "--out",
        str(tmp_path / "features"),
    ]
    assert command("extract", *importing, "--captions", str(captions)).returncode == 2
    # The test video is not in the training captions: its duration is unknown, and nothing was written.
    assert not (tmp_path / "features").exists()
    every = tmp_path / "all.jsonl"
    every.write_text("".join((folder / "annotations" / f"{s}.jsonl").read_text() for s in ("train", "val", "test")))
    assert command("extract", *importing, "--captions", str(every)).returncode == 0

    store = FeatureStore(tmp_path / "features")
    spec = store.spec()
    assert (spec.backbone, spec.layer, spec.dim, spec.sample_fps) == ("imported", "clip-vit-b32", CLIP_DIM, 0.0)
    video = splits["test"][0]["video"]
    rows = np.load(clip_like / f"{video}.npy").T
    assert np.array_equal(store.read(video), rows)
    durations = {p.video: p.duration for p in load_paragraphs(every)}
    assert store.records()[video].duration == durations[video] and store.records()[video].clips == len(rows)

    run = tmp_path / "run"
    paths = [f"data.{s}={folder / 'annotations' / f'{s}.jsonl'}" for s in ("train", "val", "test")]
    argv = ["--config", str(REPO / "configs" / "smoke.yaml"), f"data.features={tmp_path / 'features'}", *paths,
            f"data.feature_dim={CLIP_DIM}", f"run_dir={run}", "train.epochs=1", "--no-progress"]  # fmt: skip
    assert command("train", *argv).returncode == 0

    paragraph = folder / "paragraphs" / f"{video}.txt"
    grounder = Grounder.from_checkpoint(run / "last.pt")
    # The files are [D, T]: read as [T, D] they are refused, with a word on which way round they look.
    with pytest.raises(InputError, match=r"\(are the files \[D, T\]\? say so\)$"):
        grounder.read_features(clip_like / f"{video}.npy", durations[video])
    np.save(tmp_path / f"{video}.npy", rows)
    result = grounder.ground(grounder.read_features(tmp_path / f"{video}.npy", durations[video]), paragraph.read_text())
    assert result["duration"] == pytest.approx(durations[video])
    assert len(result["sentences"]) == len(splits["test"][0]["sentences"])
    assert all(0 <= s["start"] < s["end"] <= durations[video] for s in result["sentences"])
    with pytest.raises(InputError, match=r"\.mp4: the model was trained on features made elsewhere, imported "
                                         r"clip-vit-b32 \(512-d\).*--features FILE\.npy --duration S"):  # fmt: skip
        grounder.ground(folder / "videos" / f"{video}.mp4", paragraph.read_text())

    grounded = command("ground", "--features", str(tmp_path / f"{video}.npy"), "--duration",
                       str(durations[video]), str(paragraph), "--checkpoint", str(run / "last.pt"), "--json",
                       str(tmp_path / "g.json"), "--no-progress")  # fmt: skip
    assert grounded.returncode == 0, grounded.stderr
    assert json.loads((tmp_path / "g.json").read_text())["sentences"] == result["sentences"]


def test_seconds_per_row_give_each_video_its_duration_and_ground_needs_no_duration(tmp_path):
    source = tmp_path / "npy"
    source.mkdir()
    np.save(source / "a.npy", np.ones((10, 8), np.float16))
    summary = import_features(source, FeatureStore(tmp_path / "store", create=True), label="i3d", seconds_per_row=0.5)
    assert (summary.imported, summary.rows) == (1, 10)
    record = FeatureStore(tmp_path / "store").records()["a"]
    assert record.duration == 5.0 and record.spec.sample_fps == 2.0
    assert record.spec.describe() == "imported i3d (8-d), a row every 0.5 s"


def test_damaged_or_mismatched_files_get_one_line_naming_the_file_and_leave_the_store_as_it_was(tmp_path):
    source = tmp_path / "npy"
    source.mkdir()
    np.save(source / "a_good.npy", np.zeros((6, 16), np.float32))
    store_folder = tmp_path / "store"

    def refused(name: str, write) -> str:
        path = source / name
        write(path)
        with pytest.raises(InputError) as error:
            import_features(source, FeatureStore(store_folder, create=True), label="clip", seconds_per_row=1.0)
        path.unlink()
        assert not list(store_folder.glob("*.npy")) and not (store_folder / "manifest.jsonl").exists()
        message = str(error.value)
        assert "\n" not in message and message.startswith(str(path))
        return message

    assert "32-d features where 16-d" in refused("b.npy", lambda p: np.save(p, np.zeros((6, 32), np.float32)))
    nan = np.zeros((6, 16), np.float32)
    nan[[1, 4]] = np.nan
    assert "2 rows of 6 hold NaN or infinity (rows 1, 4)" in refused("b.npy", lambda p: np.save(p, nan))
    pickled = np.array([{"features": [1.0]}], dtype=object)
    assert "a pickled array" in refused("b.npy", lambda p: np.save(p, pickled, allow_pickle=True))
    assert "shape (16,)" in refused("b.npy", lambda p: np.save(p, np.zeros(16, np.float32)))
    assert "a pickled array" in refused("b.npy", lambda p: p.write_bytes(pickle.dumps([1.0, 2.0])))
    assert "not a NumPy .npy file" in refused("b.npy", lambda p: p.write_text("0.1 0.2\n0.3 0.4\n"))
    with pytest.raises(InputError, match=r"no rows"):
        np.save(tmp_path / "empty.npy", np.zeros((0, 16), np.float32))
        read_feature_file(tmp_path / "empty.npy")
