"""hscnet/data.py on real paragraphs: datasets, sampling, batches, loaders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import REPO, write_feature_store

from hscnet.annotations import read_annotations
from hscnet.common.errors import InputError
from hscnet.config import load_config
from hscnet.data import (
    EpochSampler,
    GroundingDataset,
    SampleSpec,
    chunks,
    collate,
    crop_window,
    make_loader,
    tokenize_paragraphs,
)
from hscnet.features import l2_normalize, prepare_video
from hscnet.text import Vocabulary


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
    dataset = GroundingDataset(paragraphs, store, vocab, SampleSpec(256, 500, 64), words=words)
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


def test_training_samples_at_most_eight_sentences_in_annotation_order(shared_data, tmp_path):
    paragraphs, _ = read_annotations(shared_data / "activitynet" / "train.json")
    long_ones = [p for p in paragraphs if len(p.sentences) > 8][:10]
    unordered = [p for p in paragraphs if p.timestamps != sorted(p.timestamps)]
    assert len(unordered) == 544  # training paragraphs not in time order as annotated (546 before cleaning)
    chosen = long_ones + unordered[:20]
    store = write_feature_store(tmp_path / "store", {p.video: 30 for p in chosen}, dim=16)
    words = tokenize_paragraphs(chosen)
    vocab = Vocabulary.build(s for p in words for s in p)
    dataset = GroundingDataset(chosen, store, vocab, SampleSpec(32, 16, 64, max_sentences=8, seed=3), words=words)
    counts, shown_out_of_time_order = set(), 0
    for index in range(len(dataset)):
        item = dataset[(index, 0)]
        picked = item["meta"]["sentence_index"]
        assert 1 <= len(picked) <= 8 and picked == sorted(picked)  # annotation order, as the test reads
        starts = item["spans"][:, 0]
        shown_out_of_time_order += bool((starts[1:] < starts[:-1]).any())
        counts.add(len(picked))
        again = dataset[(index, 0)]
        assert again["meta"]["sentence_index"] == picked
    assert shown_out_of_time_order > 0  # what sorting by time used to hide
    assert len(counts) > 2  # the count itself is sampled, as the VPG peers train
    epochs = [dataset[(0, epoch)]["meta"]["sentence_index"] for epoch in range(6)]
    assert len({tuple(e) for e in epochs}) > 1
    # A whole non-temporal paragraph, collated: its sentences stay as annotated.
    full = GroundingDataset(unordered[:1], store, vocab, SampleSpec(32, 16, 64), words=words[10:11])
    batch = collate([full[0]])
    expected = torch.tensor(unordered[0].timestamps, dtype=torch.float32) / unordered[0].duration
    torch.testing.assert_close(batch.spans[0], expected)


def test_sampler_skips_the_samples_a_resumed_run_has_already_seen():
    full = list(EpochSampler(20, seed=1, epoch=2))
    assert sorted(i for i, _ in full) == list(range(20)) and {e for _, e in full} == {2}
    assert list(EpochSampler(20, seed=1, epoch=2, skip=7)) == full[7:]
    assert list(EpochSampler(20, seed=1, epoch=3)) != full


def test_truncation_is_counted(val2_sample):
    paragraphs, store, vocab, words = val2_sample
    dataset = GroundingDataset(paragraphs, store, vocab, SampleSpec(64, 500, 5), words=words)
    expected = sum(len(s) > 5 for p in words for s in p)
    assert dataset.report.truncated_sentences == expected > 0
    assert all(len(s) <= 5 for item in dataset.items for s in item.word_ids)


def test_missing_features_are_an_error_or_skipped_and_counted(val2_sample, tmp_path):
    paragraphs, _, vocab, words = val2_sample
    partial = write_feature_store(tmp_path / "partial", {p.video: 10 for p in paragraphs[:40]}, dim=500)
    missing = list(dict.fromkeys(p.video for p in paragraphs[40:] if p.video not in partial))
    with pytest.raises(InputError, match=rf"{len(missing)} of \d+ videos have no features .*first: {missing[0]}"):
        GroundingDataset(paragraphs, partial, vocab, SampleSpec(64, 500, 64), source="val_2", words=words)
    spec = SampleSpec(64, 500, 64)
    skipped = GroundingDataset(paragraphs, partial, vocab, spec, missing_features="skip", words=words)
    assert len(skipped.report.skipped_videos) == sum(p.video not in partial for p in paragraphs)
    assert len(skipped) == sum(p.video in partial for p in paragraphs)


def test_a_wrong_feature_dimension_names_the_file(val2_sample):
    paragraphs, store, vocab, words = val2_sample
    with pytest.raises(
        InputError, match=rf"{paragraphs[0].video}\.npy: features of shape \(40, 500\), expected \[clips, 4096\]"
    ):
        GroundingDataset(paragraphs, store, vocab, SampleSpec(64, 4096, 64), words=words)


def test_loader_workers_default_to_in_process_on_cpu_and_refuse_nonsense():
    config = load_config(REPO / "configs" / "activitynet.yaml")
    assert config.data.num_workers == -1
    dataset = list(range(4))
    assert make_loader(dataset, 2, config.data.num_workers, device=torch.device("cpu")).num_workers == 0
    assert make_loader(dataset, 2, config.data.num_workers, device=torch.device("cuda")).num_workers == 2
    assert make_loader(dataset, 2, 1, device=torch.device("cpu")).num_workers == 1
    with pytest.raises(InputError, match=r"data\.num_workers is -2"):
        make_loader(dataset, 2, -2)


def test_evaluation_reads_a_long_paragraph_in_chunks_of_the_trained_length(shared_data, tmp_path):
    paragraphs, _ = read_annotations(shared_data / "activitynet" / "val_1.json")
    longest = max(paragraphs, key=lambda p: len(p.sentences))
    long_ones = [p for p in paragraphs if len(p.sentences) > 8]
    assert len(long_ones) == 93 and len(longest.sentences) == 25  # val_1's 9- to 25-sentence paragraphs
    assert [len(part) for part in chunks(25, 8)] == [6, 6, 6, 7] and [len(p) for p in chunks(8, 8)] == [8]
    store = write_feature_store(tmp_path / "store", {longest.video: 20}, dim=16)
    words = tokenize_paragraphs([longest])
    vocab = Vocabulary.build(s for p in words for s in p)
    dataset = GroundingDataset([longest], store, vocab, SampleSpec(32, 16, 64, chunk_sentences=8), words=words)
    assert [len(item.texts) for item in dataset.items] == [6, 6, 6, 7]
    assert [t for item in dataset.items for t in item.texts] == longest.sentences
    assert dataset.report.chunked_paragraphs == 1


def test_training_on_every_sentence_reads_the_chunks_evaluation_reads(shared_data, tmp_path):
    paragraphs, _ = read_annotations(shared_data / "activitynet" / "train.json")
    chosen = [p for p in paragraphs if len(p.sentences) > 8][:5] + [p for p in paragraphs if len(p.sentences) <= 8][:5]
    store = write_feature_store(tmp_path / "store", {p.video: 30 for p in chosen}, dim=16)
    words = tokenize_paragraphs(chosen)
    vocab = Vocabulary.build(s for p in words for s in p)
    every = GroundingDataset(
        chosen, store, vocab, SampleSpec(32, 16, 64, max_sentences=8, sample_sentences=False), words=words
    )
    evaluation = GroundingDataset(chosen, store, vocab, SampleSpec(32, 16, 64, chunk_sentences=8), words=words)
    assert len(every) == len(evaluation) > len(chosen)  # the long paragraphs in chunks of at most 8
    for index in range(len(every)):
        for epoch in range(3):  # the same sentences every epoch: nothing is sampled
            item = every[(index, epoch)]
            assert item["meta"]["texts"] == evaluation[index]["meta"]["texts"]
            torch.testing.assert_close(item["spans"], evaluation[index]["spans"])


def test_cropped_videos_keep_every_sentence_and_move_it_in_time(shared_data, tmp_path):
    paragraphs, _ = read_annotations(shared_data / "activitynet" / "train.json")
    chosen = paragraphs[:40]
    clips = {p.video: 20 + i for i, p in enumerate(chosen)}
    store = write_feature_store(tmp_path / "store", clips, dim=16)
    words = tokenize_paragraphs(chosen)
    vocab = Vocabulary.build(s for p in words for s in p)
    dataset = GroundingDataset(
        chosen, store, vocab, SampleSpec(32, 16, 64, max_sentences=8, seed=1, crop_videos=True), words=words
    )
    cropped = 0
    for index, paragraph in enumerate(chosen):
        features = l2_normalize(store.read(paragraph.video).astype(np.float32))
        clip = paragraph.duration / clips[paragraph.video]
        for epoch in range(4):
            item = dataset[(index, epoch)]
            window = item["meta"]["duration"]
            assert 0 < window <= paragraph.duration + 1e-6
            assert item["spans"].min() >= 0 and item["spans"].max() <= 1
            # The spans, back in the video's own seconds, are the annotation's: no sentence was cut.
            shift = np.array(paragraph.timestamps)[item["meta"]["sentence_index"]] - item["meta"]["timestamps"]
            first = shift[0, 0] / clip
            assert np.allclose(shift, shift[0, 0]) and abs(first - round(first)) < 1e-6
            count = round(window / clip)
            window_features = features[round(first) : round(first) + count]
            expected = torch.from_numpy(prepare_video(window_features, 32))
            torch.testing.assert_close(item["video"], expected)  # the model reads exactly those clips
            cropped += count < clips[paragraph.video]
            assert dataset[(index, epoch)]["meta"]["timestamps"] == item["meta"]["timestamps"]  # resumable
    assert cropped > 40  # most samples are windows, not the whole video


def test_a_crop_window_holds_the_spans_at_the_video_edges():
    rng = np.random.default_rng(0)
    for _ in range(200):
        total = int(rng.integers(1, 12))
        duration = total * 2.0
        start = float(rng.uniform(0, duration))
        spans = np.array([[start, min(duration + 0.3, start + rng.uniform(0, 6))]])  # may end past the video
        first, last = crop_window(total, duration, spans, rng)
        assert 0 <= first < last <= total
        assert first * 2.0 <= start and last * 2.0 >= min(spans[0, 1], duration) - 1e-9


def test_stories_join_paragraphs_one_after_another_on_one_clip_grid(shared_data, tmp_path):
    paragraphs, _ = read_annotations(shared_data / "activitynet" / "train.json")
    chosen = paragraphs[:12]
    clips = {p.video: 15 + 7 * i for i, p in enumerate(chosen)}  # clip rates differ from video to video
    store = write_feature_store(tmp_path / "store", clips, dim=16)
    words = tokenize_paragraphs(chosen)
    vocab = Vocabulary.build(s for p in words for s in p)
    spec = SampleSpec(64, 16, 64, max_sentences=8, stories=5, story_paragraphs=3, story_sentences=16, seed=2)
    dataset = GroundingDataset(chosen, store, vocab, spec, words=words)
    assert len(dataset) == len(chosen) + 5
    by_video = {p.video: p for p in chosen}
    longest = 0
    for index in range(len(chosen), len(dataset)):
        drawn = []
        for epoch in range(3):
            item = dataset[(index, epoch)]
            meta = item["meta"]
            parts = [by_video[video] for video in meta["video"].split(" + ")]
            drawn.append(meta["video"])
            assert len(set(meta["video"].split(" + "))) == 3
            duration = sum(p.duration for p in parts)
            assert meta["duration"] == pytest.approx(duration) and item["video"].shape == (64, 16)
            # Each part is its own video's clips, resampled to a run of the story's 64 clips as long as
            # its share of the duration (within a clip): found by trying every length.
            clip = duration / 64
            sentences = [s for p in parts for s in p.sentences]
            bounds = [0]
            for p in parts:
                first = bounds[-1]
                fits = [
                    n
                    for n in range(1, 65 - first)
                    if first + n <= 64
                    and np.allclose(
                        item["video"][first : first + n].numpy(), prepare_video(store.read(p.video), n), atol=1e-6
                    )
                ]
                assert len(fits) == 1 and abs(fits[0] - p.duration / clip) <= 1
                bounds.append(first + fits[0])
            assert bounds[-1] == 64
            assert 1 <= len(meta["texts"]) <= 16 and meta["sentence_index"] == sorted(meta["sentence_index"])
            longest = max(longest, len(meta["texts"]))
            for i, text, (start, end) in zip(meta["sentence_index"], meta["texts"], meta["timestamps"], strict=True):
                assert text == sentences[i]
                k = next(k for k in range(3) if i < sum(len(p.sentences) for p in parts[: k + 1]))
                own_start, own_end = parts[k].timestamps[i - sum(len(p.sentences) for p in parts[:k])]
                scale = (bounds[k + 1] - bounds[k]) * clip / parts[k].duration
                assert start == pytest.approx(bounds[k] * clip + max(own_start, 0) * scale)
                assert end == pytest.approx(bounds[k] * clip + min(own_end, parts[k].duration) * scale)
                assert bounds[k] * clip - 1e-6 <= start <= end <= bounds[k + 1] * clip + 1e-6  # inside its part
            assert item["spans"].min() >= 0 and item["spans"].max() <= 1
            assert dataset[(index, epoch)]["meta"] == meta  # the same story when a run resumes
        assert len(set(drawn)) > 1  # drawn anew every epoch
    assert longest > 8  # stories teach more sentences than a paragraph sample holds


def test_stories_need_at_least_two_paragraphs(shared_data, tmp_path):
    paragraphs, _ = read_annotations(shared_data / "activitynet" / "train.json")
    chosen = paragraphs[:3]
    store = write_feature_store(tmp_path / "store", {p.video: 20 for p in chosen}, dim=16)
    words = tokenize_paragraphs(chosen)
    vocab = Vocabulary.build(s for p in words for s in p)
    for parts in (1, 4):
        spec = SampleSpec(32, 16, 64, max_sentences=8, stories=2, story_paragraphs=parts)
        with pytest.raises(InputError, match=f"train.jsonl: data.story_paragraphs is {parts}: a story joins 2 to 3"):
            GroundingDataset(chosen, store, vocab, spec, words=words, source="train.jsonl")
