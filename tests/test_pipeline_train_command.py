"""pipeline/train_command.py: the README's three commands on raw videos and one captions file."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import REPO

from hscnet.annotations import Paragraph
from hscnet.common.errors import InputError
from hscnet.pipeline import synthetic
from hscnet.pipeline.train_command import caption_video_id, find_captions, num_clips_for, split_by_video

TINY = synthetic.WorldShape(episodes=(2, 2), idle_at_ends=3.0, idle_between=3.0)


def run(folder, *args):
    command = [str(REPO / "bin" / args[0]), *args[1:]]
    result = subprocess.run(command, capture_output=True, text=True, cwd=folder, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_the_three_commands_from_raw_videos_and_captions_to_spans(tmp_path):
    # Three videos (12 C3D clips), the fewest a captions file may hold: one each to train, validate and test.
    splits = synthetic.generate_world(tmp_path / "world", clips=12, seed=140, progress=False, shape=TINY)
    paragraphs = [p for items in splits.values() for p in items]
    assert len(paragraphs) == 3
    (tmp_path / "videos").mkdir()
    for p in paragraphs:
        (tmp_path / "world" / "videos" / f"{p['video']}.mp4").rename(tmp_path / "videos" / f"{p['video']}.mp4")
    captions = {p["video"]: {k: p[k] for k in ("duration", "timestamps", "sentences")} for p in paragraphs}
    (tmp_path / "captions.json").write_text(json.dumps(captions))  # ActivityNet Captions format

    extracted = run(tmp_path, "extract", "--videos", "videos/", "--no-progress")
    assert f"no --out given: the feature store is {tmp_path / 'features'}" in extracted.stderr
    assert "glibc keeping freed memory; 1 worker(s)" in extracted.stderr  # from the Ray that bin/extract starts
    # The recipe would train its one paragraph 120 epochs; an override (as the README shows) keeps it to 4.
    trained = run(tmp_path, "train", "--no-progress", "train.epochs=4")
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("captions-") and (run_dir / "best.pt").is_file()
    assert sorted(p.name for p in (run_dir / "captions").iterdir()) == ["test.jsonl", "train.jsonl", "val.jsonl"]
    assert "own-small.yaml (the demo's smaller model and recipe), 4096-d features" in trained.stderr
    assert ", 4 epochs; run folder " in trained.stderr
    checkpoint = run_dir.relative_to(tmp_path) / "best.pt"
    last_line = trained.stdout.strip().splitlines()[-1]
    assert last_line == f"ground a video with it: bin/ground VIDEO PARAGRAPH.txt --checkpoint {checkpoint}"

    example = min(paragraphs, key=lambda p: p["duration"])  # bin/ground extracts it again
    (tmp_path / "paragraph.txt").write_text(" ".join(example["sentences"]))
    grounded = run(tmp_path, "ground", f"videos/{example['video']}.mp4", "paragraph.txt", "--json", "out.json")
    assert f"no --checkpoint given: using {checkpoint}" in grounded.stderr
    lines = grounded.stdout.splitlines()  # the table: the video and paragraph, then a row and words per sentence
    assert lines[0].startswith(f"{example['video']}.mp4 (") and "paragraph" in lines[0]
    assert lines[1].split() == ["#", "start", "end", "sentence"]
    assert sum(line.strip().startswith("words:") for line in lines) == len(example["sentences"])
    result = json.loads((tmp_path / "out.json").read_text())
    assert len(result["sentences"]) == len(example["sentences"])
    for sentence in result["sentences"]:
        assert 0 <= sentence["start"] <= sentence["end"] <= result["duration"] <= example["duration"] + 0.2


def test_captions_are_found_in_the_folder_or_named_and_missing_ones_are_one_line(tmp_path):
    with pytest.raises(InputError, match=r"no captions found \(looked for captions\.json, captions\.jsonl and"):
        find_captions(tmp_path, None)
    (tmp_path / "train.jsonl").write_text("")
    (tmp_path / "val_1.json").write_text("{}")
    assert find_captions(tmp_path, None) == {"train": tmp_path / "train.jsonl", "val": tmp_path / "val_1.json"}
    (tmp_path / "captions.json").write_text("{}")
    assert find_captions(tmp_path, None) == tmp_path / "captions.json"
    with pytest.raises(InputError, match=r"absent\.json: captions file not found"):
        find_captions(tmp_path, str(tmp_path / "absent.json"))


def test_one_captions_file_is_split_by_video_with_a_fixed_seed(shared_data):
    from hscnet.annotations import read_annotations

    paragraphs, _ = read_annotations(shared_data / "tacos" / "train_paragraphs.npy")
    renamed = [Paragraph(caption_video_id(p.video), p.duration, p.sentences, p.timestamps) for p in paragraphs]
    assert renamed[0].video == paragraphs[0].video.removesuffix(".avi") and "." not in renamed[0].video
    splits = split_by_video(renamed)
    videos = {name: {p.video for p in items} for name, items in splits.items()}
    assert not (videos["train"] & videos["val"]) and not (videos["train"] & videos["test"])
    assert sum(len(items) for items in splits.values()) == len(paragraphs) == 1526
    assert len(videos["val"]) == len(videos["test"]) == round(len({p.video for p in renamed}) * 0.1)
    assert split_by_video(renamed) == splits
    with pytest.raises(InputError, match="at least 3 are needed"):
        split_by_video(renamed[:1])
    assert (num_clips_for([10, 12, 14]), num_clips_for([100, 300, 500]), num_clips_for([2000])) == (32, 256, 256)
