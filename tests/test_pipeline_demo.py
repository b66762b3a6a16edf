"""pipeline/demo.py: the whole demo in miniature."""

from __future__ import annotations

import json

from conftest import SMALL, WORLD_CLIPS, WORLD_EPOCHS, WORLD_SEED

from hscnet.checkpoint import load_checkpoint
from hscnet.extract.store import FeatureStore
from hscnet.pipeline import synthetic


def test_the_whole_demo_in_miniature(small_demo):
    folder, summary = small_demo  # run_demo's every stage, once a session: the other tests use its world
    videos = len(synthetic.plan_world(WORLD_CLIPS, seed=WORLD_SEED, shape=SMALL))
    assert sum(summary["videos"].values()) == videos and min(summary["videos"].values()) >= 1
    assert summary["clips"] >= WORLD_CLIPS
    assert set(summary["seconds"]) == {"generate", "extract", "train", "evaluate", "ground"}
    for name in ("eval.json", "ground.json", "ground.png", "summary.json", "run/last.pt", "features/manifest.jsonl"):
        assert (folder / name).is_file(), name
    evaluation = json.loads((folder / "eval.json").read_text())
    assert (summary["test"], summary["prior"]) == (evaluation["metrics"], evaluation["prior"])
    assert evaluation["split"] == "test" and evaluation["sentences"] >= 1
    assert 0 <= summary["test"]["mIoU"] <= 1 and 0 < summary["prior"]["mIoU"] <= 1
    checkpoint = load_checkpoint(folder / "run" / "last.pt")
    assert checkpoint["state"]["epoch"] == WORLD_EPOCHS  # the override reached training
    records = FeatureStore(folder / "features").records()
    assert len(records) == videos and all(record.status == "ok" for record in records.values())
    grounded = json.loads((folder / "ground.json").read_text())
    paragraph = (folder / "paragraphs" / grounded["video"].replace(".mp4", ".txt")).read_text()
    assert " ".join(sentence["text"] for sentence in grounded["sentences"]) == " ".join(paragraph.split())
    assert all(0 <= s["start"] <= s["end"] <= grounded["duration"] for s in grounded["sentences"])
