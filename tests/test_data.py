"""The data stage on the real annotation files: readers, cleaning, features, batches."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest
import torch
from conftest import write_feature_store

from common.errors import InputError
from extract.store import FeatureStore
from extract.text import Vocabulary
from hscnet.annotations import detect_format, read_annotations
from hscnet.data import EpochSampler, GroundingDataset, collate, tokenize_paragraphs
from hscnet.features import HDF5Features, open_features, prepare_video, resample_clips
from hscnet.restricted_pickle import load_object_npy


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


class _RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_a_command_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    payload = np.empty(1, dtype=object)
    payload[0] = _RunsACommand(marker)
    np.save(tmp_path / "evil.npy", payload, allow_pickle=True)
    with pytest.raises(InputError, match=r"evil\.npy: refused to load posix\.system"):
        load_object_npy(tmp_path / "evil.npy")
    with pytest.raises(InputError, match="refused"):
        read_annotations(tmp_path / "evil.npy")
    assert not marker.exists()


def test_the_restricted_unpickler_reads_the_real_vpg_files(shared_data):
    array = load_object_npy(shared_data / "activitynet" / "val_2_paragraphs.npy")
    assert array.shape == (4929,) and array[0]["video"] == "v_my9Z4bun_Dk"
    assert array[0]["timestamps"][0] == [0, 22.35]


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


def test_resampling_averages_within_bins_and_interpolates_short_videos():
    clips = np.arange(12, dtype=np.float32).reshape(6, 2)  # rows [0,1], [2,3], ..., [10,11]
    np.testing.assert_allclose(resample_clips(clips, 3), [[1, 2], [5, 6], [9, 10]])
    np.testing.assert_allclose(resample_clips(clips, 6), clips)
    stretched = resample_clips(clips[:2], 4)  # 2 clips to 4: interpolated between them
    np.testing.assert_allclose(stretched[:, 0], [0.0, 0.5, 1.5, 2.0])
    prepared = prepare_video(np.array([[3.0, 4.0], [0.0, 2.0]]), 2)
    np.testing.assert_allclose(prepared, [[0.6, 0.8], [0.0, 1.0]])


def test_feature_store_is_memory_mapped(tmp_path):
    store = write_feature_store(tmp_path / "store", {"v1": 5}, dim=8)
    reopened = open_features(tmp_path / "store")
    assert isinstance(reopened, FeatureStore) and "v1" in reopened and "v2" not in reopened
    assert isinstance(reopened.read("v1"), np.memmap)
    assert store.read("v1").shape == (5, 8)


def test_both_released_hdf5_layouts_are_read(tmp_path):
    with h5py.File(tmp_path / "anet.hdf5", "w") as f:
        f.create_group("v_a").create_dataset("c3d_features", data=np.ones((7, 500), np.float32))
    with h5py.File(tmp_path / "tall.hdf5", "w") as f:
        f.create_dataset("s13-d21.avi", data=np.ones((9, 4096), np.float32))
    anet, tall = open_features(tmp_path / "anet.hdf5"), open_features(tmp_path / "tall.hdf5")
    assert isinstance(anet, HDF5Features)
    assert anet.read("v_a").shape == (7, 500) and tall.read("s13-d21.avi").shape == (9, 4096)
    (tmp_path / "junk.hdf5").write_bytes(b"not hdf5")
    with pytest.raises(InputError, match=r"junk\.hdf5: not a readable HDF5 file"):
        open_features(tmp_path / "junk.hdf5")


@pytest.fixture
def val2_sample(shared_data, tmp_path):
    paragraphs, _ = read_annotations(shared_data / "activitynet" / "val_2_paragraphs.npy")
    paragraphs = paragraphs[:48]
    store = write_feature_store(tmp_path / "store", {p.video: 40 + i for i, p in enumerate(paragraphs)}, dim=500)
    words = tokenize_paragraphs(paragraphs)
    vocab = Vocabulary.build(s for p in words for s in p)
    return paragraphs, store, vocab, words


def test_batches_have_the_shapes_and_masks_the_model_needs(val2_sample):
    paragraphs, store, vocab, words = val2_sample
    dataset = GroundingDataset(paragraphs, store, vocab, num_clips=256, feature_dim=500, max_words=64, words=words)
    items = [dataset[i] for i in range(8)]
    batch = collate(items)
    ns = [len(p.sentences) for p in paragraphs[:8]]
    nw = [sum(len(s) for s in w) for w in words[:8]]
    assert batch.video.shape == (8, 256, 500) and batch.video_mask.all()
    assert batch.words.shape == (8, max(nw)) and batch.word_mask.sum(1).tolist() == nw
    assert batch.sentence_mask.sum(1).tolist() == ns
    assert batch.sentence_words.shape == (8, max(ns), max(len(s) for w in words[:8] for s in w))
    for b in range(8):
        for i in range(ns[b]):
            index = batch.sentence_words[b, i][batch.sentence_word_mask[b, i]]
            assert (batch.word_sentence[b, index] == i).all()
            assert batch.words[b, index].tolist() == vocab.encode(words[b][i])
        real = batch.spans[b, : ns[b]]
        expected = torch.tensor(paragraphs[b].timestamps, dtype=torch.float32) / paragraphs[b].duration
        torch.testing.assert_close(real, expected)
        assert batch.paragraph_span[b].tolist() == pytest.approx([real[:, 0].min().item(), real[:, 1].max().item()])
    assert (batch.words[~batch.word_mask] == 0).all()
    norms = batch.video[0].norm(dim=1)
    assert (norms <= 1.0 + 1e-5).all() and (norms > 0.05).all()


def test_training_samples_at_most_eight_sentences_in_temporal_order(shared_data, tmp_path):
    paragraphs, _ = read_annotations(shared_data / "activitynet" / "train.json")
    long_ones = [p for p in paragraphs if len(p.sentences) > 8][:10]
    store = write_feature_store(tmp_path / "store", {p.video: 30 for p in long_ones}, dim=16)
    words = tokenize_paragraphs(long_ones)
    vocab = Vocabulary.build(s for p in words for s in p)
    dataset = GroundingDataset(long_ones, store, vocab, 32, 16, max_words=64, max_sentences=8, seed=3, words=words)
    counts = set()
    for index in range(len(dataset)):
        item = dataset[(index, 0)]
        starts = item["spans"][:, 0]
        assert 1 <= len(item["word_ids"]) <= 8
        assert (starts[1:] >= starts[:-1]).all()
        counts.add(len(item["word_ids"]))
        again = dataset[(index, 0)]
        assert again["meta"]["sentence_index"] == item["meta"]["sentence_index"]
    assert len(counts) > 2  # the count itself is sampled, as the VPG peers train
    epochs = [dataset[(0, epoch)]["meta"]["sentence_index"] for epoch in range(6)]
    assert len({tuple(e) for e in epochs}) > 1


def test_sampler_skips_the_samples_a_resumed_run_has_already_seen():
    full = list(EpochSampler(20, seed=1, epoch=2))
    assert sorted(i for i, _ in full) == list(range(20)) and {e for _, e in full} == {2}
    assert list(EpochSampler(20, seed=1, epoch=2, skip=7)) == full[7:]
    assert list(EpochSampler(20, seed=1, epoch=3)) != full


def test_truncation_is_counted(val2_sample):
    paragraphs, store, vocab, words = val2_sample
    dataset = GroundingDataset(paragraphs, store, vocab, 64, 500, max_words=5, words=words)
    expected = sum(len(s) > 5 for p in words for s in p)
    assert dataset.report.truncated_sentences == expected > 0
    assert all(len(s) <= 5 for item in dataset.items for s in item.word_ids)


def test_missing_features_are_an_error_or_skipped_and_counted(val2_sample, tmp_path):
    paragraphs, _, vocab, words = val2_sample
    partial = write_feature_store(tmp_path / "partial", {p.video: 10 for p in paragraphs[:40]}, dim=500)
    missing = list(dict.fromkeys(p.video for p in paragraphs[40:] if p.video not in partial))
    with pytest.raises(InputError, match=rf"{len(missing)} of \d+ videos have no features .*first: {missing[0]}"):
        GroundingDataset(paragraphs, partial, vocab, 64, 500, 64, source="val_2", words=words)
    skipped = GroundingDataset(paragraphs, partial, vocab, 64, 500, 64, missing_features="skip", words=words)
    assert len(skipped.report.skipped_videos) == sum(p.video not in partial for p in paragraphs)
    assert len(skipped) == sum(p.video in partial for p in paragraphs)


def test_a_wrong_feature_dimension_names_the_file(val2_sample):
    paragraphs, store, vocab, words = val2_sample
    with pytest.raises(
        InputError, match=rf"{paragraphs[0].video}\.npy: features of shape \(40, 500\), expected \[clips, 4096\]"
    ):
        GroundingDataset(paragraphs, store, vocab, 64, 4096, 64, words=words)
