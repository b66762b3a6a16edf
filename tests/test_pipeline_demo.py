"""pipeline/demo.py: the whole demo in miniature."""

from __future__ import annotations

import pytest
from conftest import SMALL, WORLD_CLIPS, WORLD_SEED

from pipeline import synthetic


@pytest.mark.slow
def test_the_whole_demo_in_miniature(tmp_path, ray_session):
    from pipeline.demo import run_demo

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
    assert 0 <= summary["test"]["mIoU"] <= 1 and "mIoU" in summary["prior"]
