"""hscnet/train.py on real annotations with proxy features: files, resume, interrupts, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import torch
from conftest import REPO, SMOKE, command, overrides, write_feature_store

from hscnet import checkpoint as ckpt
from hscnet.annotations import read_annotations
from hscnet.config import load_config
from hscnet.train import TrainingDiverged, learning_rate, run, train


def test_a_run_writes_its_files_and_resumes_to_identical_weights(proxy_data, tmp_path):
    extra = ("train.epochs=2", "data.num_workers=2")
    straight = load_config(SMOKE, overrides(proxy_data, tmp_path / "straight", *extra))
    state = train(straight, progress=False)
    assert not state.interrupted and state.epoch == 2 and state.global_step == 24

    run_dir = tmp_path / "straight"
    assert {"config.yaml", "metrics.jsonl", "last.pt", "best.pt", "tensorboard"} <= {p.name for p in run_dir.iterdir()}
    assert load_config(run_dir / "config.yaml") == straight
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2]
    assert set(lines[0]["val"]) == {"R@0.3", "R@0.5", "R@0.7", "mIoU"} and lines[0]["train"]["loss"] > 0
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(run_dir / "tensorboard"))
    best = ckpt.load_checkpoint(run_dir / "best.pt")
    assert best["state"]["best_epoch"] == int(np.argmax([line["val"]["mIoU"] for line in lines]))

    # The same run, stopped in the middle of epoch 2, then resumed.
    stopped = load_config(SMOKE, overrides(proxy_data, tmp_path / "resumed", *extra))
    state = train(stopped, on_step=lambda s: s.global_step == 17, progress=False)
    assert state.interrupted and (state.epoch, state.step_in_epoch) == (1, 5)
    assert run(None, [], str(tmp_path / "resumed"), progress=False) == 0

    straight_weights = ckpt.load_checkpoint(run_dir / "last.pt")["model"]
    resumed_weights = ckpt.load_checkpoint(tmp_path / "resumed" / "last.pt")["model"]
    assert all(torch.equal(straight_weights[name], resumed_weights[name]) for name in straight_weights)
    resumed_lines = [json.loads(x) for x in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [x["val"] for x in resumed_lines] == [x["val"] for x in lines]
    for resumed_line, line in zip(resumed_lines, lines, strict=True):
        assert resumed_line["train"] == pytest.approx(line["train"])


def test_epochs_between_checkpoints_are_dropped_from_the_metrics_and_run_again_on_resume(proxy_data, tmp_path):
    class Crash(Exception):
        pass

    def crash_in_epoch_3(state):
        if state.epoch == 2:
            raise Crash

    # No validation split, so no epoch improves: last.pt is written after the first and the last epoch only.
    extra = ("train.epochs=3", "train.batch_size=48", "data.val=", "train.checkpoint_seconds=1e9")
    straight = train(load_config(SMOKE, overrides(proxy_data, tmp_path / "straight", *extra)), progress=False)
    assert straight.epoch == 3
    with pytest.raises(Crash):
        train(load_config(SMOKE, overrides(proxy_data, tmp_path / "crashed", *extra)), on_step=crash_in_epoch_3,
              progress=False)  # fmt: skip
    metrics = tmp_path / "crashed" / "metrics.jsonl"
    assert [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()] == [1, 2]
    assert ckpt.load_checkpoint(tmp_path / "crashed" / "last.pt")["state"]["epoch"] == 1
    assert run(None, [], str(tmp_path / "crashed"), progress=False) == 0
    assert [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()] == [1, 2, 3]
    expected = ckpt.load_checkpoint(tmp_path / "straight" / "last.pt")["model"]
    resumed = ckpt.load_checkpoint(tmp_path / "crashed" / "last.pt")["model"]
    assert all(torch.equal(expected[name], resumed[name]) for name in expected)


@pytest.mark.slow
def test_ctrl_c_saves_a_loadable_last_checkpoint(proxy_data, tmp_path):
    args = ["train", "--config", str(SMOKE), *overrides(proxy_data, tmp_path / "run", "train.epochs=200")]
    process = subprocess.Popen([str(REPO / "bin" / args[0]), *args[1:]], cwd=REPO, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        if line.startswith("training on"):
            break
    time.sleep(3)
    process.send_signal(signal.SIGINT)
    rest = process.stderr.read()
    assert process.wait(timeout=60) == 130
    content = ckpt.load_checkpoint(tmp_path / "run" / "last.pt")
    assert content["state"]["interrupted"] and content["state"]["global_step"] > 0
    assert f"bin/train --resume {tmp_path / 'run'}" in rest


def test_unknown_key_and_missing_file_are_one_line_errors(proxy_data, tmp_path):
    result = command("train", "--config", str(SMOKE), *overrides(proxy_data, tmp_path / "r"), "model.hiden_dim=64")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: override 'model.hiden_dim=64': unknown config key 'model.hiden_dim' (known: bidirectional_lstm, "
        "depths, dropout, "
        "feature_encoder_layers, heads, hidden_dim, paragraph_decoder, paragraph_level, temperature, word_decoder, "
        "word_level)"
    ]
    missing = tmp_path / "no-such-annotations.json"
    result = command("train", "--config", str(SMOKE), *overrides(proxy_data, tmp_path / "r"), f"data.train={missing}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {missing}: annotation file not found"]
    assert not (tmp_path / "r").exists()


def test_a_run_with_stories_trains_on_them_and_keeps_them_in_its_checkpoint(proxy_data, tmp_path):
    extra = ("train.epochs=1", "data.stories=24", "data.story_paragraphs=3", "data.story_sentences=12")
    config = load_config(SMOKE, overrides(proxy_data, tmp_path / "run", *extra))
    seen = []
    state = train(config, on_step=lambda s: seen.append(s.global_step) and False, progress=False)
    assert state.global_step == (96 + 24) // 8 == len(seen)  # the stories are samples of every epoch
    best = ckpt.load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["config"]["data"]["stories"] == 24 and best["config"]["data"]["story_sentences"] == 12
    bad = overrides(proxy_data, tmp_path / "bad", "data.story_paragraphs=1", "data.stories=8")
    result = command("train", "--config", str(SMOKE), *bad)
    assert result.returncode == 2 and result.stderr.count("error:") == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {proxy_data['train']}: data.story_paragraphs is 1: a story joins 2 to 16 paragraphs "
        "(the training paragraphs, at most data.num_clips)"
    )
    assert not (tmp_path / "bad").exists()


def test_a_nan_loss_stops_the_run_with_the_step(proxy_data, tmp_path):
    paragraphs, _ = read_annotations(proxy_data["train"])
    store = write_feature_store(tmp_path / "nan", {p.video: 8 for p in paragraphs}, dim=500)
    for video in store.ids():
        store.write(video, np.full((8, 500), np.nan, dtype=np.float16))
    config = load_config(
        SMOKE, overrides(proxy_data, tmp_path / "run", f"data.features={tmp_path / 'nan'}", "data.val=")
    )
    with pytest.raises(TrainingDiverged, match=r"the loss became nan at epoch 1, step 1 \(global step 1\)"):
        train(config, progress=False)


def test_learning_rate_schedules():
    config = load_config(SMOKE, ["train.lr=1.0", "train.epochs=4", "train.warmup_steps=2"])
    assert [learning_rate(config, s, 10) for s in (0, 1, 2, 39)] == [0.5, 1.0, 1.0, 1.0]
    config = load_config(SMOKE, ["train.lr=1.0", "train.epochs=4", "train.lr_schedule=cosine"])
    assert learning_rate(config, 20, 10) == pytest.approx(0.5)
    config = load_config(
        SMOKE, ["train.lr=1.0", "train.lr_schedule=step", "train.lr_step_epochs=2", "train.lr_gamma=0.1"]
    )
    assert [learning_rate(config, s, 10) for s in (19, 20, 40)] == pytest.approx([1.0, 0.1, 0.01])
