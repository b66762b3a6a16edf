"""bin/train and bin/eval on real annotations with proxy features: files, resume, interrupts, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import REPO, write_feature_store

from common.errors import InputError
from hscnet import checkpoint as ckpt
from hscnet.annotations import Paragraph, read_annotations
from hscnet.config import load_config
from hscnet.data import make_loader
from hscnet.prior import SpanPrior
from hscnet.train import TrainingDiverged, learning_rate, run, train
from pipeline.proxy import write_proxy_store

SMOKE = REPO / "configs" / "smoke.yaml"


def write_jsonl(path, paragraphs):
    path.write_text(
        "".join(
            json.dumps({"video": p.video, "duration": p.duration, "sentences": p.sentences, "timestamps": p.timestamps})
            + "\n"
            for p in paragraphs
        )
    )
    return path


@pytest.fixture(scope="module")
def proxy_data(shared_data, tmp_path_factory):
    """96 real ActivityNet training paragraphs and 24 real val_2 chunks, with proxy features."""
    folder = tmp_path_factory.mktemp("proxy")
    train_paragraphs, _ = read_annotations(shared_data / "activitynet" / "train.json")
    test_paragraphs, _ = read_annotations(shared_data / "activitynet" / "val_2_paragraphs.npy")
    train_set, val_set = train_paragraphs[:96], test_paragraphs[:24]
    write_proxy_store([train_set, val_set], folder / "features", progress=False)
    return {
        "features": folder / "features",
        "train": write_jsonl(folder / "train.jsonl", train_set),
        "val": write_jsonl(folder / "val.jsonl", val_set),
    }


def overrides(data, run_dir, *extra):
    return [
        f"data.features={data['features']}",
        f"data.train={data['train']}",
        f"data.val={data['val']}",
        f"data.test={data['val']}",
        "data.feature_dim=500",
        f"run_dir={run_dir}",
        *extra,
    ]


def cli(*args, **kwargs):
    return subprocess.run([str(REPO / "bin" / args[0]), *args[1:]], capture_output=True, text=True, cwd=REPO, **kwargs)


def test_a_run_writes_its_files_and_resumes_to_identical_weights(proxy_data, tmp_path):
    extra = ("train.epochs=3", "data.num_workers=2")
    straight = load_config(SMOKE, overrides(proxy_data, tmp_path / "straight", *extra))
    state = train(straight, progress=False)
    assert not state.interrupted and state.epoch == 3 and state.global_step == 36

    run_dir = tmp_path / "straight"
    assert {"config.yaml", "metrics.jsonl", "last.pt", "best.pt", "tensorboard"} <= {p.name for p in run_dir.iterdir()}
    assert load_config(run_dir / "config.yaml") == straight
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2, 3]
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


def test_bin_eval_prints_the_table_beside_the_prior_and_writes_json(proxy_data, tmp_path):
    config = load_config(SMOKE, overrides(proxy_data, tmp_path / "run", "train.epochs=1"))
    train(config, progress=False)
    result = cli(
        "eval",
        "--checkpoint",
        str(tmp_path / "run" / "best.pt"),
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
    assert lines[1].split() == ["R@0.3", "R@0.5", "R@0.7", "mIoU"]
    assert lines[2].startswith("HSCNet") and lines[3].startswith("dataset prior")
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["sentences"] == sentences and 0 <= metrics["metrics"]["mIoU"] <= 1 and "mIoU" in metrics["prior"]
    assert f"{100 * metrics['prior']['mIoU']:.2f}" in lines[3]
    predictions = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(predictions) == 24 and len(predictions[0]["predicted"]) == len(predictions[0]["sentences"])
    assert all(0 <= s <= e <= p["duration"] for p in predictions for s, e in p["predicted"])


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
    result = cli("train", "--config", str(SMOKE), *overrides(proxy_data, tmp_path / "r"), "model.hiden_dim=64")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {SMOKE}: unknown config key 'model.hiden_dim' (known: bidirectional_lstm, depths, dropout, "
        "feature_encoder_layers, heads, hidden_dim, paragraph_decoder, paragraph_level, temperature, word_decoder, "
        "word_level)"
    ]
    missing = tmp_path / "no-such-annotations.json"
    result = cli("train", "--config", str(SMOKE), *overrides(proxy_data, tmp_path / "r"), f"data.train={missing}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {missing}: annotation file not found"]
    assert not (tmp_path / "r").exists()


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


def test_a_failed_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    ckpt.save_checkpoint(path, {"model": {"w": torch.ones(3)}})

    def broken_save(obj, target, *args, **kwargs):
        with open(target, "wb") as handle:
            handle.write(b"half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="No space left"):
        ckpt.save_checkpoint(path, {"model": {"w": torch.zeros(3)}})
    assert torch.equal(ckpt.load_checkpoint(path)["model"]["w"], torch.ones(3))
    assert os.listdir(tmp_path) == ["last.pt"]
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(InputError, match=r"junk\.pt: not a loadable checkpoint"):
        ckpt.load_checkpoint(tmp_path / "junk.pt")


def test_the_prior_is_the_mean_span_by_position_and_length():
    paragraphs = [
        Paragraph("a", 10.0, ["x", "y"], [(0.0, 4.0), (4.0, 10.0)]),
        Paragraph("b", 20.0, ["x", "y"], [(0.0, 4.0), (10.0, 20.0)]),
        Paragraph("c", 10.0, ["x"], [(2.0, 6.0)]),
    ]
    prior = SpanPrior.fit(paragraphs)
    np.testing.assert_allclose(prior.predict(2), [[0.0, 0.3], [0.45, 1.0]])
    np.testing.assert_allclose(prior.predict(1), [[0.2, 0.6]])
    assert prior.predict(5).shape == (5, 2)  # an unseen length falls back to relative positions
    assert SpanPrior.from_json(json.loads(json.dumps(prior.to_json()))).predict(2).tolist() == prior.predict(2).tolist()


def test_learning_rate_schedules():
    config = load_config(SMOKE, ["train.lr=1.0", "train.epochs=4", "train.warmup_steps=2"])
    assert [learning_rate(config, s, 10) for s in (0, 1, 2, 39)] == [0.5, 1.0, 1.0, 1.0]
    config = load_config(SMOKE, ["train.lr=1.0", "train.epochs=4", "train.lr_schedule=cosine"])
    assert learning_rate(config, 20, 10) == pytest.approx(0.5)
    config = load_config(
        SMOKE, ["train.lr=1.0", "train.lr_schedule=step", "train.lr_step_epochs=2", "train.lr_gamma=0.1"]
    )
    assert [learning_rate(config, s, 10) for s in (19, 20, 40)] == pytest.approx([1.0, 0.1, 0.01])


def test_loader_workers_default_to_in_process_on_cpu_and_refuse_nonsense():
    config = load_config(REPO / "configs" / "activitynet.yaml")
    assert config.data.num_workers == -1
    dataset = list(range(4))
    assert make_loader(dataset, 2, config.data.num_workers, device=torch.device("cpu")).num_workers == 0
    assert make_loader(dataset, 2, config.data.num_workers, device=torch.device("cuda")).num_workers == 2
    assert make_loader(dataset, 2, 1, device=torch.device("cpu")).num_workers == 1
    with pytest.raises(InputError, match=r"data\.num_workers is -2"):
        make_loader(dataset, 2, -2)


def test_python_entry_points_use_this_interpreter():
    assert os.access(REPO / "bin" / "train", os.X_OK) and sys.executable
