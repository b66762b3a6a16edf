"""The demo world, bin/ground on generated video, and the whole demo in miniature."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from conftest import REPO

from common.errors import InputError
from extract.extractor import ExtractSettings
from extract.spec import FeatureSpec, file_identity
from extract.video import probe
from hscnet.annotations import Paragraph
from hscnet.config import load_config
from hscnet.grounder import Grounder, extraction_settings
from hscnet.train import train
from pipeline import synthetic
from pipeline.extraction import run_extraction
from pipeline.ground import ground_command
from pipeline.proxy import write_proxy_store


def test_the_generator_is_deterministic_for_a_seed():
    first = synthetic.make_scene("v", np.random.default_rng([7, 1]))
    again = synthetic.make_scene("v", np.random.default_rng([7, 1]))
    other = synthetic.make_scene("v", np.random.default_rng([8, 1]))
    assert first.paragraph() == again.paragraph() != other.paragraph()
    frames = list(synthetic.frames_of(first, np.random.default_rng(0)))
    assert all(
        np.array_equal(a, b) for a, b in zip(frames, synthetic.frames_of(again, np.random.default_rng(0)), strict=True)
    )


@pytest.mark.parametrize("index", range(12))
def test_the_timestamps_are_what_is_drawn(index):
    scene = synthetic.make_scene("v", np.random.default_rng([0, index]))
    frames = list(synthetic.frames_of(scene, np.random.default_rng(index)))
    assert len(frames) == round(scene.duration * synthetic.FPS)
    background = synthetic.frames_of(synthetic.Scene("empty", scene.duration, []), np.random.default_rng(index))
    for number, (frame, empty) in enumerate(zip(frames, background, strict=True)):
        t = number / synthetic.FPS
        active = [e for e in scene.episodes if e.start <= t <= e.end]
        if not active:
            assert np.array_equal(frame, empty), f"something drawn at {t:.2f} s, outside every episode"
        for episode in active:
            if episode.start + 1.0 < t < episode.end - 1.0:  # well inside: the shape is on screen
                colour = np.round(episode.state_at(t).rgb).astype(np.uint8)
                assert (np.abs(frame.astype(int) - colour).sum(-1) <= 3).any(), (
                    f"{episode.sentence!r} not drawn at {t:.2f} s"
                )
    paragraph = scene.paragraph()
    assert paragraph["timestamps"] == sorted(paragraph["timestamps"])
    assert all(0 <= s < e <= paragraph["duration"] for s, e in paragraph["timestamps"])


# Short stories of few clips: seed 3 gives 7 videos (43 clips), so that every split has one.
WORLD_CLIPS, SMALL = 40, synthetic.WorldShape(episodes=(2, 3), idle_at_ends=4.0, idle_between=4.0)


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    """Demo videos of about 40 C3D clips on disk, their features and a model trained on them for a moment."""
    folder = tmp_path_factory.mktemp("world")
    splits = synthetic.generate_world(folder, clips=WORLD_CLIPS, seed=3, progress=False, shape=SMALL)
    summary = run_extraction(folder / "videos", folder / "features", ExtractSettings(), use_ray=False, progress=False)
    assert not summary.failed
    scenes = synthetic.plan_world(WORLD_CLIPS, seed=3, shape=SMALL)
    assert summary.clips == sum(synthetic.scene_clips(scene) for scene in scenes) >= WORLD_CLIPS
    paths = [f"data.{name}={folder / 'annotations' / f'{name}.jsonl'}" for name in ("train", "val", "test")]
    config = load_config(
        REPO / "configs" / "smoke.yaml",
        [f"data.features={folder / 'features'}", *paths, f"run_dir={folder / 'run'}", "train.epochs=2"],
    )
    train(config, progress=False)
    return folder, splits


def test_the_world_has_disjoint_splits_of_real_videos(small_world):
    folder, splits = small_world
    assert {name: len(items) for name, items in splits.items()} == {"train": 5, "val": 1, "test": 1}
    ids = [p["video"] for items in splits.values() for p in items]
    assert len(set(ids)) == 7
    for paragraph in splits["test"]:
        info = probe(folder / "videos" / f"{paragraph['video']}.mp4")
        assert info.fps == pytest.approx(synthetic.FPS)
        assert info.duration == pytest.approx(paragraph["duration"], abs=0.2)
        text = (folder / "paragraphs" / f"{paragraph['video']}.txt").read_text().strip()
        assert text == " ".join(paragraph["sentences"])
    lines = (folder / "annotations" / "train.jsonl").read_text().splitlines()
    assert [json.loads(line)["video"] for line in lines] == [p["video"] for p in splits["train"]]


def test_ground_gives_valid_json_for_every_sentence_and_word(small_world, tmp_path):
    folder, splits = small_world
    video = splits["test"][0]["video"]
    result = ground_command(
        folder / "videos" / f"{video}.mp4",
        folder / "paragraphs" / f"{video}.txt",
        checkpoint=folder / "run" / "last.pt",
        json_out=str(tmp_path / "g.json"),
        plot_out=str(tmp_path / "g.png"),
    )
    assert json.loads((tmp_path / "g.json").read_text()) == result
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    duration = result["duration"]
    assert duration == pytest.approx(splits["test"][0]["duration"], abs=0.2)
    assert 0 <= result["paragraph"]["start"] <= result["paragraph"]["end"] <= duration
    expected = splits["test"][0]["sentences"]
    assert [s["text"] for s in result["sentences"]] == expected
    for sentence, text in zip(result["sentences"], expected, strict=True):
        assert 0 <= sentence["start"] <= sentence["end"] <= duration
        words = [w["word"] for w in sentence["words"]]
        assert words == [w for w in text.lower().replace(",", " ").replace(";", " ").replace(".", " ").split()]
        assert all(0 <= w["start"] <= w["end"] <= duration for w in sentence["words"])
    assert result["unknown_words"] == sorted(result["unknown_words"])


def test_ground_errors_are_one_clear_line(small_world, tmp_path):
    folder, splits = small_world
    video = folder / "videos" / f"{splits['test'][0]['video']}.mp4"
    paragraph = folder / "paragraphs" / f"{splits['test'][0]['video']}.txt"
    checkpoint = folder / "run" / "last.pt"
    grounder = Grounder.from_checkpoint(checkpoint)
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all" * 10)
    with pytest.raises(InputError, match=r"missing\.mp4: video file not found"):
        grounder.ground(tmp_path / "missing.mp4", paragraph.read_text())
    with pytest.raises(InputError, match=r"broken\.mp4: cannot decode"):
        grounder.ground(tmp_path / "broken.mp4", paragraph.read_text())
    with pytest.raises(InputError, match=r"empty\.txt: empty paragraph"):
        ground_command(video, tmp_path / "empty.txt", checkpoint=checkpoint)
    with pytest.raises(InputError, match=r"--weights .* would not match"):
        Grounder.from_checkpoint(checkpoint, weights=str(paragraph))

    # A checkpoint trained on other features (here: proxy features) is refused.
    paragraphs = [json.loads(line) for line in (folder / "annotations" / "train.jsonl").read_text().splitlines()]
    write_proxy_store(
        [[Paragraph(p["video"], p["duration"], p["sentences"], p["timestamps"]) for p in paragraphs]],
        tmp_path / "proxy",
        dim=4096,
        progress=False,
    )
    config = load_config(
        REPO / "configs" / "smoke.yaml",
        [
            f"data.features={tmp_path / 'proxy'}",
            f"data.train={folder / 'annotations' / 'train.jsonl'}",
            "data.val=",
            f"run_dir={tmp_path / 'proxy-run'}",
            "train.epochs=1",
        ],
    )
    train(config, progress=False)
    with pytest.raises(InputError, match=r"trained on proxy features, which bin/ground cannot extract"):
        Grounder.from_checkpoint(tmp_path / "proxy-run" / "last.pt")


@pytest.mark.slow
def test_bin_ground_prints_the_table(small_world):
    folder, splits = small_world
    video = splits["test"][0]["video"]
    result = subprocess.run(
        [
            str(REPO / "bin" / "ground"),
            str(folder / "videos" / f"{video}.mp4"),
            str(folder / "paragraphs" / f"{video}.txt"),
            "--checkpoint",
            str(folder / "run" / "last.pt"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{video}.mp4 (") and "paragraph" in lines[0]
    assert lines[1].split() == ["#", "start", "end", "sentence"]
    assert sum(line.strip().startswith("words:") for line in lines) == len(splits["test"][0]["sentences"])
    missing = subprocess.run(
        [str(REPO / "bin" / "ground"), "nope.mp4", "nope.txt", "--checkpoint", str(folder / "run" / "last.pt")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert missing.returncode == 2 and missing.stderr.strip() == "error: nope.txt: paragraph file not found"


@pytest.mark.slow
def test_the_whole_demo_in_miniature(tmp_path, ray_session):
    from pipeline.demo import run_demo

    summary = run_demo(
        WORLD_CLIPS, seed=3, folder=tmp_path / "demo", overrides=["train.epochs=3"], progress=False, shape=SMALL
    )
    videos = len(synthetic.plan_world(WORLD_CLIPS, seed=3, shape=SMALL))
    assert sum(summary["videos"].values()) == videos and min(summary["videos"].values()) >= 1
    assert summary["clips"] >= WORLD_CLIPS
    assert set(summary["seconds"]) == {"generate", "extract", "train", "evaluate", "ground"}
    for name in ("eval.json", "ground.json", "ground.png", "summary.json", "run/best.pt", "features/manifest.jsonl"):
        assert (tmp_path / "demo" / name).is_file(), name
    assert 0 <= summary["test"]["mIoU"] <= 1 and "mIoU" in summary["prior"]


def test_ground_asks_for_the_pca_the_features_were_projected_with(tmp_path):
    (tmp_path / "pca.hdf5").write_bytes(b"stand-in: only its identity is compared here")
    (tmp_path / "other.hdf5").write_bytes(b"another file")
    spec = FeatureSpec(stride=8, layer="fc7", dim=500, pca=f"{file_identity(tmp_path / 'pca.hdf5')} to 500")
    with pytest.raises(InputError, match=r"projected with the PCA pca\.hdf5 sha256:\w+ to 500; give it with --pca"):
        extraction_settings(spec, "ckpt", None, None, "cpu")
    with pytest.raises(InputError, match=r"other\.hdf5: not the PCA the checkpoint's features were projected with"):
        extraction_settings(spec, "ckpt", None, str(tmp_path / "other.hdf5"), "cpu")
    settings = extraction_settings(spec, "ckpt", None, str(tmp_path / "pca.hdf5"), "cpu")
    assert (settings.layer, settings.pca_dims, settings.stride) == ("fc7", 500, 8) and settings.spec() == spec
    with pytest.raises(InputError, match=r"released HDF5 features"):
        extraction_settings(None, "ckpt", None, None, "cpu")
