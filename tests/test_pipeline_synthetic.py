"""pipeline/synthetic.py: the demo world draws what its paragraphs say."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hscnet.common.errors import InputError
from hscnet.extract.video import probe
from hscnet.pipeline import synthetic


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


def test_the_world_has_disjoint_splits_of_real_videos(small_world):
    folder, splits = small_world
    assert {name: len(items) for name, items in splits.items()} == {"train": 4, "val": 1, "test": 1}
    ids = [p["video"] for items in splits.values() for p in items]
    assert len(set(ids)) == 6
    for paragraph in splits["test"]:
        info = probe(folder / "videos" / f"{paragraph['video']}.mp4")
        assert info.fps == pytest.approx(synthetic.FPS)
        assert info.duration == pytest.approx(paragraph["duration"], abs=0.2)
        text = (folder / "paragraphs" / f"{paragraph['video']}.txt").read_text().strip()
        assert text == " ".join(paragraph["sentences"])
    lines = (folder / "annotations" / "train.jsonl").read_text().splitlines()
    assert [json.loads(line)["video"] for line in lines] == [p["video"] for p in splits["train"]]


def test_a_folder_of_another_world_is_refused_not_mixed(tmp_path):
    tiny = synthetic.WorldShape(episodes=(2, 2), idle_at_ends=2.0, idle_between=2.0)
    synthetic.generate_world(tmp_path, clips=5, seed=1, progress=False, shape=tiny)
    videos = sorted(p.name for p in (tmp_path / "videos").iterdir())
    synthetic.generate_world(tmp_path, clips=5, seed=1, progress=False, shape=tiny)  # a rerun resumes
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == videos
    with pytest.raises(InputError, match=r"holds a demo world of other settings .* \(make clean-demo\)"):
        synthetic.generate_world(tmp_path, clips=5, seed=2, progress=False, shape=tiny)
    (tmp_path / "world.json").unlink()  # a world of an earlier version had no record
    with pytest.raises(InputError, match="an earlier version"):
        synthetic.generate_world(tmp_path, clips=5, seed=1, progress=False, shape=tiny)
