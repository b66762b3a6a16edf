"""hscnet/annotations.py on the real annotation files: readers, cleaning, formats."""

from __future__ import annotations

import json

import pytest

from hscnet.annotations import detect_format, read_annotations
from hscnet.common.errors import InputError


@pytest.mark.parametrize(
    ("path", "fmt", "paragraphs", "sentences", "dropped", "clipped"),
    [
        ("activitynet/train.json", "activitynet", 10009, 37417, 4, 29),  # 37421 annotated, 4 with start >= end
        ("activitynet/val_1.json", "activitynet", 4917, 17505, 0, 5),
        ("activitynet/val_2.json", "activitynet", 4885, 17031, 0, 1),
        ("activitynet/val_2_paragraphs.npy", "vpg-npy", 4929, 17031, 0, 1),
        ("tacos/train_paragraphs.npy", "vpg-npy", 1526, 9732, 0, 0),
        ("tacos/val_paragraphs.npy", "vpg-npy", 688, 4398, 0, 0),
        ("tacos/test_paragraphs.npy", "vpg-npy", 673, 3989, 0, 0),
        ("tacos/train.json", "tacos", 75, 9790, 0, 43),
        ("tacos/test.json", "tacos", 25, 4001, 0, 5),
    ],
)
def test_real_annotation_counts(shared_data, path, fmt, paragraphs, sentences, dropped, clipped):
    assert detect_format(shared_data / path) == fmt
    result, report = read_annotations(shared_data / path)
    assert (report.paragraphs, report.sentences) == (paragraphs, sentences)
    assert (report.dropped_empty_span, report.clipped_past_end) == (dropped, clipped)
    assert len(result) == paragraphs
    for paragraph in result:
        assert len(paragraph.sentences) == len(paragraph.timestamps) > 0
        assert all(0 <= s < e <= paragraph.duration for s, e in paragraph.timestamps)


def test_activitynet_raw_sentence_count_before_cleaning(shared_data):
    raw = json.loads((shared_data / "activitynet" / "train.json").read_text())
    assert sum(len(v["sentences"]) for v in raw.values()) == 37421


def test_tacos_frames_become_seconds(shared_data):
    raw = json.loads((shared_data / "tacos" / "train.json").read_text())
    video, entry = next(iter(raw.items()))
    paragraphs, _ = read_annotations(shared_data / "tacos" / "train.json")
    paragraph = next(p for p in paragraphs if p.video == video)
    fps = entry["fps"]
    assert paragraph.duration == pytest.approx(entry["num_frames"] / fps)
    assert paragraph.timestamps[0] == pytest.approx((entry["timestamps"][0][0] / fps, entry["timestamps"][0][1] / fps))
    assert video == "s17-d69.avi" and paragraph.timestamps[0] == pytest.approx((224 / 29.4, 358 / 29.4))


def test_jsonl_round_trip_and_format_errors(tmp_path):
    path = tmp_path / "ours.jsonl"
    path.write_text(
        json.dumps(
            {"video": "v1", "duration": 10.0, "sentences": ["A dog runs.", "It sits."], "timestamps": [[0, 4], [5, 12]]}
        )
        + "\n"
    )
    (paragraph,), report = read_annotations(path)
    assert paragraph.timestamps == [(0.0, 4.0), (5.0, 10.0)] and report.clipped_past_end == 1
    (tmp_path / "bad.jsonl").write_text('{"video": "v1"}\n')
    with pytest.raises(InputError, match=r"bad\.jsonl: not a valid jsonl annotation file"):
        read_annotations(tmp_path / "bad.jsonl")
    with pytest.raises(InputError, match="annotation file not found"):
        read_annotations(tmp_path / "absent.json")
