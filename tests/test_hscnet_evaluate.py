"""hscnet/evaluate.py: bin/eval's table beside the prior, and its files."""

from __future__ import annotations

import json

import pytest
from conftest import SMOKE, command, overrides

from hscnet.annotations import read_annotations
from hscnet.config import load_config
from hscnet.evaluate import EvalOutputs, evaluate_checkpoint
from hscnet.train import train


@pytest.fixture(scope="module")
def checkpoint(proxy_data, tmp_path_factory):
    """A model trained for one epoch on real paragraphs with proxy features."""
    run = tmp_path_factory.mktemp("eval") / "run"
    train(load_config(SMOKE, overrides(proxy_data, run, "train.epochs=1")), progress=False)
    return run / "best.pt"


def test_bin_eval_prints_the_table_beside_the_prior_and_writes_json(proxy_data, checkpoint, tmp_path):
    result = command(
        "eval",
        "--checkpoint",
        str(checkpoint),
        "--json",
        str(tmp_path / "m.json"),
        "--predictions",
        str(tmp_path / "p.jsonl"),
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    sentences = sum(len(p.sentences) for p in read_annotations(proxy_data["val"])[0])
    assert lines[0] == f"val.jsonl: 24 paragraphs, {sentences} sentences (test split)"
    assert lines[1] == "reading: every paragraph as the paper reads it (longer ones in chunks over the whole video)"
    assert lines[2].split() == ["R@0.3", "R@0.5", "R@0.7", "mIoU"]
    assert lines[3].startswith("HSCNet") and lines[4].startswith("dataset prior")
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["reading"] == {"rule": "story", "read_as_story": 0}  # val_2 comes cut: read as the paper does
    assert metrics["sentences"] == sentences and 0 <= metrics["metrics"]["mIoU"] <= 1 and "mIoU" in metrics["prior"]
    assert f"{100 * metrics['prior']['mIoU']:.2f}" in lines[4]
    predictions = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(predictions) == 24 and len(predictions[0]["predicted"]) == len(predictions[0]["sentences"])
    assert all(0 <= s <= e <= p["duration"] for p in predictions for s, e in p["predicted"])


def test_an_uncut_long_paragraph_is_read_as_one_story_or_as_the_paper_does(proxy_data, checkpoint, tmp_path, capsys):
    paragraphs, _ = read_annotations(proxy_data["train"])  # real ActivityNet training paragraphs, uncut
    long = sum(len(p.sentences) > 8 for p in paragraphs)
    assert long == 4
    readings = {}
    for reading in ("story", "chunks"):
        outputs = EvalOutputs(json=str(tmp_path / f"{reading}.json"), predictions=str(tmp_path / f"{reading}.jsonl"))
        evaluate_checkpoint(checkpoint, annotations=str(proxy_data["train"]), outputs=outputs, reading=reading,
                            progress=False)  # fmt: skip
        printed = capsys.readouterr().out
        readings[reading] = json.loads((tmp_path / f"{reading}.json").read_text())
        story = "4 paragraphs longer than the trained length read as one story"
        assert (story if reading == "story" else "every paragraph as the paper reads it") in printed
        predictions = [json.loads(x) for x in (tmp_path / f"{reading}.jsonl").read_text().splitlines()]
        assert sum(len(p["sentences"]) for p in predictions) == readings[reading]["sentences"]
        assert all(0 <= s <= e <= p["duration"] for p in predictions for s, e in p["predicted"])
    assert readings["story"]["reading"] == {"rule": "story", "read_as_story": long}
    assert readings["chunks"]["reading"] == {"rule": "chunks", "read_as_story": 0}
    assert readings["story"]["sentences"] == readings["chunks"]["sentences"]  # the same sentences, read two ways
