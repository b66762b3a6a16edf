"""pipeline/ground.py: bin/ground on generated video, its outputs and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, command

from benchmarks.proxy_store import write_proxy_store
from hscnet.annotations import Paragraph
from hscnet.common.errors import InputError
from hscnet.config import load_config
from hscnet.grounder import Grounder
from hscnet.pipeline.ground import GroundOutputs, ModelChoice, ground_command
from hscnet.train import train


def test_ground_gives_valid_json_for_every_sentence_and_word(small_world, tmp_path):
    folder, splits = small_world
    video = splits["test"][0]["video"]
    result = ground_command(
        folder / "videos" / f"{video}.mp4",
        folder / "paragraphs" / f"{video}.txt",
        model=ModelChoice(checkpoint=folder / "run" / "last.pt"),
        outputs=GroundOutputs(json=str(tmp_path / "g.json"), plot=str(tmp_path / "g.png")),
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
        ground_command(video, tmp_path / "empty.txt", model=ModelChoice(checkpoint=checkpoint))
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
            "data.test=",
            f"run_dir={tmp_path / 'proxy-run'}",
            "train.epochs=1",
        ],
    )
    train(config, progress=False)
    with pytest.raises(InputError, match=r"trained on proxy features, which bin/ground cannot extract"):
        Grounder.from_checkpoint(tmp_path / "proxy-run" / "last.pt")


@pytest.mark.slow
def test_bin_ground_names_a_missing_video_in_one_line(small_world):
    # Its table on a real video: the three commands' test (tests/test_pipeline_train_command.py).
    folder, _ = small_world
    missing = command("ground", "nope.mp4", "nope.txt", "--checkpoint", str(folder / "run" / "last.pt"))
    assert missing.returncode == 2 and missing.stderr.strip() == "error: nope.mp4: video file not found"


@pytest.mark.slow
def test_bin_ground_on_given_features_loads_no_backbone_and_warns_of_none(small_world, tmp_path):
    # The world's model was trained on a random C3D; with the video's features given, no C3D runs, so the
    # warning about its random weights would mislead. A process of its own: the warning comes once a process.
    folder, splits = small_world
    test = splits["test"][0]
    argv = ["--features", str(folder / "features" / f"{test['video']}.npy"), "--duration", str(test["duration"]),
            str(folder / "paragraphs" / f"{test['video']}.txt"), "--checkpoint", str(folder / "run" / "last.pt"),
            "--json", str(tmp_path / "g.json")]  # fmt: skip
    grounded = subprocess.run([sys.executable, str(REPO / "bin" / "ground"), *argv], capture_output=True, text=True)
    assert grounded.returncode == 0, grounded.stderr
    assert "RANDOM" not in grounded.stderr and "weights" not in grounded.stderr
    result = json.loads((tmp_path / "g.json").read_text())
    assert [s["text"] for s in result["sentences"]] == test["sentences"]
    assert all(0 <= s["start"] <= s["end"] <= test["duration"] for s in result["sentences"])


def test_without_a_checkpoint_the_newest_run_is_used_then_the_demos(tmp_path, monkeypatch):
    from hscnet.pipeline import ground

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(ground, "DEMO_CHECKPOINT", tmp_path / "demo" / "run" / "best.pt")
    with pytest.raises(InputError, match=r"no --checkpoint given, no run under .*runs and no demo checkpoint"):
        ground.default_checkpoint()
    ground.DEMO_CHECKPOINT.parent.mkdir(parents=True)
    ground.DEMO_CHECKPOINT.write_bytes(b"demo")
    assert ground.default_checkpoint() == ground.DEMO_CHECKPOINT
    for age, (run, name) in enumerate([("new", "last.pt"), ("old", "best.pt"), ("old", "last.pt")]):
        (tmp_path / "runs" / run).mkdir(parents=True, exist_ok=True)
        (tmp_path / "runs" / run / name).write_bytes(b"x")
        os.utime(tmp_path / "runs" / run / name, (1e9 - age * 1000, 1e9 - age * 1000))
    assert ground.default_checkpoint() == Path("runs") / "new" / "last.pt"  # no best.pt there yet
    os.utime(tmp_path / "runs" / "old" / "best.pt", (2e9, 2e9))
    assert ground.default_checkpoint() == Path("runs") / "old" / "best.pt"


def write_items(path, lines):
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


@pytest.mark.slow
def test_batch_grounds_every_item_as_one_call_would_and_records_the_failures(small_world, tmp_path):
    folder, splits = small_world
    test = splits["test"][0]
    val = min(splits["train"] + splits["val"], key=lambda p: p["duration"])  # a second video, in the fewest clips
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "broken.mp4").write_bytes(b"not a video" * 20)
    items = write_items(
        tmp_path / "items.jsonl",
        [
            {"video": str(folder / "videos" / f"{test['video']}.mp4"), "paragraph": " ".join(test["sentences"])},
            {"video": str(folder / "videos" / f"{val['video']}.mp4"), "paragraph": val["sentences"]},
            {"video": "clips/missing.mp4", "paragraph": "A red circle comes in."},
            "{not json",
            {"video": "clips/broken.mp4", "paragraph": "A red circle comes in."},
            {"video": str(folder / "videos" / f"{test['video']}.mp4"), "paragraph": []},
            {"video": str(folder / "videos" / f"{test['video']}.mp4"), "paragraph": val["sentences"][:1]},
        ],
    )
    result = command(
        "ground", "--batch", str(items), "--out", str(tmp_path / "out.jsonl"),
        "--checkpoint", str(folder / "run" / "last.pt"), "--no-progress",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [line["line"] for line in lines] == [1, 2, 3, 4, 5, 6, 7]
    assert [("error" in line) for line in lines] == [False, False, True, True, True, True, False]
    assert lines[2]["error"].endswith("missing.mp4: video file not found")
    assert "not JSON (Expecting property name enclosed in double quotes at column 2)" in lines[3]["error"]
    assert "neither text nor a list" in lines[5]["error"]
    assert [line["video"] for line in lines] == [item.get("video") if isinstance(item, dict) else None for item in [
        json.loads(raw) if raw.startswith("{\"") else raw for raw in items.read_text().splitlines()]]  # fmt: skip
    assert "broken.mp4: cannot decode" in lines[4]["error"]
    assert "grounded 3 of 7 items" in result.stdout and "line 5: " in result.stdout
    grounder = Grounder.from_checkpoint(folder / "run" / "last.pt")
    written = [json.loads(line) for line in items.read_text().splitlines() if line.startswith('{"')]
    encoded = {}  # each video through C3D once: grounding an encoded video is what a call with its path does next
    for line in (lines[0], lines[1], lines[6]):
        item = written[line["line"] - 1 - (line["line"] > 4)]  # line 4 is the one that is not JSON
        if item["video"] not in encoded:
            encoded[item["video"]] = grounder.encode_video(item["video"])
        alone = grounder.ground(encoded[item["video"]], item["paragraph"])
        assert {key: value for key, value in line.items() if key != "line"} == {**alone, "video": item["video"]}


@pytest.mark.slow
def test_batch_of_many_videos_extracts_with_ray_into_a_store_a_rerun_reuses(small_world, ray_session, tmp_path):
    from hscnet.pipeline.ground import ground_batch

    folder, splits = small_world
    shortest = sorted(splits["train"] + splits["val"] + splits["test"], key=lambda p: p["duration"])
    everything = shortest[:2]  # as many as ray_from_videos: extracted with Ray
    items = write_items(
        tmp_path / "items.jsonl",
        [{"video": str(folder / "videos" / f"{p['video']}.mp4"), "paragraph": p["sentences"]} for p in everything],
    )
    checkpoint = folder / "run" / "last.pt"
    model = ModelChoice(checkpoint=checkpoint)
    store = str(tmp_path / "store")
    code = ground_batch(items, tmp_path / "a.jsonl", model=model, features_dir=store, progress=False, ray_from_videos=2)
    assert code == 0
    manifest = (tmp_path / "store" / "manifest.jsonl").read_text().splitlines()
    assert len(manifest) == len(everything)
    lines = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert [line["video"] for line in lines] == [str(folder / "videos" / f"{p['video']}.mp4") for p in everything]
    assert all(len(line["sentences"]) == len(p["sentences"]) for line, p in zip(lines, everything, strict=True))
    code = ground_batch(items, tmp_path / "b.jsonl", model=model, features_dir=store, progress=False, ray_from_videos=2)
    assert code == 0 and len((tmp_path / "store" / "manifest.jsonl").read_text().splitlines()) == len(everything)
    assert (tmp_path / "b.jsonl").read_text() == (tmp_path / "a.jsonl").read_text()


def test_inputs_and_outputs_are_checked_before_the_model_loads(small_world, tmp_path, monkeypatch):
    folder, splits = small_world
    video = folder / "videos" / f"{splits['test'][0]['video']}.mp4"
    paragraph = folder / "paragraphs" / f"{splits['test'][0]['video']}.txt"

    def no_model(self):
        raise AssertionError("the model was loaded before the inputs were checked")

    monkeypatch.setattr(ModelChoice, "load", no_model)
    (tmp_path / "de.txt").write_bytes("Ein Mann öffnet die Tür und geht hinaus.".encode("cp1252"))
    (tmp_path / "noise.txt").write_bytes(bytes(range(128, 256)))
    (tmp_path / "zh.txt").write_text("一个男人打开门。他走出去了。", encoding="utf-8")
    (tmp_path / "punct.txt").write_text("... !!! ?", encoding="utf-8")
    (tmp_path / "a-file").write_text("x")
    cases = [
        (video, tmp_path / "de.txt", {}, r"de\.txt: not UTF-8 text \(byte 0xf6 at position 9\); save it as UTF-8"),
        (video, tmp_path / "noise.txt", {}, r"noise\.txt: not UTF-8 text \(byte 0x80 at position 0\)"),
        (video, tmp_path / "zh.txt", {}, r"zh\.txt: the paragraph is written in a script without spaces"),
        (video, tmp_path / "punct.txt", {}, r"punct\.txt: empty paragraph: it has no words"),
        (video, tmp_path, {}, r": is a folder, not a paragraph file"),
        (folder / "videos", paragraph, {}, r"videos: is a folder, not a video file"),
        (video, paragraph, {"json": str(tmp_path)}, r": is a folder; give a file name for the JSON"),
        (video, paragraph, {"html": str(tmp_path / "a-file" / "r.html")}, r"a-file is a file, not a folder"),
        (video, paragraph, {"truth": str(tmp_path / "none.json")}, r"none\.json: annotation file not found"),
    ]
    for video_path, paragraph_path, outputs, message in cases:
        with pytest.raises(InputError, match=message):
            ground_command(video_path, paragraph_path, outputs=GroundOutputs(**outputs), progress=False)


def test_a_byte_order_mark_is_not_part_of_the_first_word(small_world, encoded_test_video, tmp_path):
    folder, splits = small_world
    example = splits["test"][0]
    grounder = Grounder.from_checkpoint(folder / "run" / "last.pt")
    encoded = encoded_test_video
    text = " ".join(example["sentences"])
    (tmp_path / "bom.txt").write_bytes("\ufeff".encode() + text.encode())
    from hscnet.pipeline.ground import read_paragraph

    with_mark = read_paragraph(tmp_path / "bom.txt", sentences_per_line=False)
    assert with_mark == text
    assert grounder.ground(encoded, with_mark) == grounder.ground(encoded, text)


def test_a_paragraph_of_words_the_model_never_saw_is_grounded_with_a_warning(small_world, encoded_test_video, caplog):
    folder, splits = small_world
    example = splits["test"][0]
    grounder = Grounder.from_checkpoint(folder / "run" / "last.pt")
    encoded = encoded_test_video
    with caplog.at_level("WARNING", logger="hscnet"):
        grounder.ground(encoded, " ".join(example["sentences"]))
    assert "unknown to the model" not in caplog.text
    with caplog.at_level("WARNING", logger="hscnet"):
        made_up = grounder.ground(encoded, "Blorf zindles the quaxy frumble. Wugs glimber.")
    assert "6 of the paragraph's 7 words (86%) are unknown to the model" in caplog.text
    assert len(made_up["sentences"]) == 2


def test_one_long_video_shows_its_extraction_progress(small_world, capsys):
    folder, splits = small_world
    example = splits["test"][0]
    grounder = Grounder.from_checkpoint(folder / "run" / "last.pt")
    encoded = grounder.encode_video(folder / "videos" / f"{example['video']}.mp4", progress=True)
    shown = capsys.readouterr().err
    assert f"extracting {example['video']}.mp4" in shown and f"/{len(encoded.features)} " in shown


def test_the_table_counts_in_the_singular_where_there_is_one():
    from hscnet.pipeline.ground import format_table

    words = [{"word": "blorf", "start": 0.0, "end": 1.0}]
    result = {"video": "v.mp4", "duration": 2.0, "paragraph": {"start": 0.0, "end": 1.0}, "unknown_words": ["blorf"],
              "sentences": [{"text": "Blorf.", "start": 0.0, "end": 1.0, "words": words}], "chunks": [[1]]}  # fmt: skip
    table = format_table(result)
    assert "1 word neither training nor GloVe knows" in table and "1 sentence, grounded in chunks" in table
    assert "1 words" not in table and "1 sentences" not in table
