"""pipeline/demo.py: the whole demo in miniature."""

from __future__ import annotations

import json

import pytest
from conftest import SMALL, WORLD_CLIPS, WORLD_SEED

from hscnet.checkpoint import load_checkpoint
from hscnet.extract.store import FeatureStore
from hscnet.pipeline import synthetic


@pytest.mark.slow
def test_the_whole_demo_in_miniature(tmp_path, ray_session):
    from hscnet.pipeline.demo import run_demo

    summary = run_demo(
        WORLD_CLIPS,
        seed=WORLD_SEED,
        folder=tmp_path / "demo",
        overrides=["train.epochs=3"],
        progress=False,
        shape=SMALL,
    )
    videos = len(synthetic.plan_world(WORLD_CLIPS, seed=WORLD_SEED, shape=SMALL))
    assert sum(summary["videos"].values()) == videos and min(summary["videos"].values()) >= 1
    assert summary["clips"] >= WORLD_CLIPS
    assert set(summary["seconds"]) == {"generate", "extract", "train", "evaluate", "ground"}
    for name in ("eval.json", "ground.json", "ground.png", "summary.json", "run/last.pt", "features/manifest.jsonl"):
        assert (tmp_path / "demo" / name).is_file(), name
    evaluation = json.loads((tmp_path / "demo" / "eval.json").read_text())
    assert (summary["test"], summary["prior"]) == (evaluation["metrics"], evaluation["prior"])
    assert evaluation["split"] == "test" and evaluation["sentences"] >= 1
    assert 0 <= summary["test"]["mIoU"] <= 1 and 0 < summary["prior"]["mIoU"] <= 1
    checkpoint = load_checkpoint(tmp_path / "demo" / "run" / "last.pt")
    assert checkpoint["state"]["epoch"] == 3  # the override reached training
    records = FeatureStore(tmp_path / "demo" / "features").records()
    assert len(records) == videos and all(record.status == "ok" for record in records.values())
    grounded = json.loads((tmp_path / "demo" / "ground.json").read_text())
    paragraph = (tmp_path / "demo" / "paragraphs" / grounded["video"].replace(".mp4", ".txt")).read_text()
    assert " ".join(sentence["text"] for sentence in grounded["sentences"]) == " ".join(paragraph.split())
    assert all(0 <= s["start"] <= s["end"] <= grounded["duration"] for s in grounded["sentences"])
