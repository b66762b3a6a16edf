"""hscnet/infer.py: a long paragraph is read as one story on a generated world of consecutive events."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from hscnet.checkpoint import load_model
from hscnet.extract.store import FeatureStore
from hscnet.grounder import EncodedVideo, Grounder
from hscnet.infer import _Reader, ground_paragraph, ordered_partition
from hscnet.text import tokenize


@pytest.fixture(scope="module")
def story(small_world):
    """The world's six videos one after another as one video, and their paragraphs as one story: twelve
    sentences of consecutive events, more than the eight the model reads at once."""
    folder, _ = small_world
    paragraphs = []
    for split in ("train", "val", "test"):
        lines = (folder / "annotations" / f"{split}.jsonl").read_text().splitlines()
        paragraphs += [json.loads(line) for line in lines]
    store = FeatureStore(folder / "features")
    features = np.concatenate([store.read(paragraph["video"]) for paragraph in paragraphs])
    sentences = [sentence for paragraph in paragraphs for sentence in paragraph["sentences"]]
    assert len(sentences) > 8
    return EncodedVideo("story", features, sum(paragraph["duration"] for paragraph in paragraphs)), sentences


def _words_share(result: dict) -> list[float]:
    """For each sentence, the share of its span that the hull of its words' spans covers."""
    return [
        (max(w["end"] for w in s["words"]) - min(w["start"] for w in s["words"])) / (s["end"] - s["start"])
        for s in result["sentences"]
        if s["end"] > s["start"]
    ]


def test_a_long_paragraph_is_read_as_one_story_its_chunks_in_order_and_every_span_in_the_video(
    small_world, story, caplog
):
    folder, _ = small_world
    video, sentences = story
    grounder = Grounder.from_checkpoint(folder / "run" / "last.pt")
    clips = grounder.trained.config.data.num_clips
    assert clips < 4 * len(sentences)  # the world's model reads every video in fewer clips than four a sentence
    with caplog.at_level("WARNING", logger="hscnet.grounder"):
        result = grounder.ground(video, sentences)
    assert [r.getMessage() for r in caplog.records] == [
        f"story: {len(sentences)} sentences over the model's {clips} clips ({clips / len(sentences):.1f} a sentence) "
        "are too coarse to tell the events apart: the spans may be worse than an even split"
    ]
    caplog.clear()
    assert result["reading"] == "story" and len(result["chunks"]) == 2
    assert [i for chunk in result["chunks"] for i in chunk] == list(range(1, len(sentences) + 1))
    windows = result["chunk_windows"]
    assert [w[0] for w in windows] == sorted(w[0] for w in windows)  # chunk k is read no earlier than chunk k-1
    assert [w[1] for w in windows] == sorted(w[1] for w in windows)
    assert all(0 <= start < end <= video.duration for start, end in windows)
    middles = [
        np.mean([(result["sentences"][n - 1]["start"] + result["sentences"][n - 1]["end"]) / 2 for n in chunk])
        for chunk in result["chunks"]
    ]
    assert middles == sorted(middles)  # chunk k's sentences come after chunk k-1's
    for sentence in result["sentences"]:
        assert 0 <= sentence["start"] <= sentence["end"] <= video.duration
        assert all(sentence["start"] <= w["start"] <= w["end"] <= sentence["end"] for w in sentence["words"])
    # The words move with their sentence into the blend and span as much of it as in a short paragraph (L_union
    # trains their hull to be the sentence); clipped to it instead, they piled up at one end.
    with caplog.at_level("WARNING", logger="hscnet.grounder"):
        short = grounder.ground(video, sentences[:8])  # within the trained length: read whole, as always
    assert not caplog.records  # a paragraph within the trained length is read as the model was trained
    assert min(_words_share(result)) > min(_words_share(short)) - 0.1
    assert result["paragraph"]["start"] <= min(s["start"] for s in result["sentences"])

    whole = grounder.ground(video, sentences, reading="chunks")  # the paper's protocol, still at hand
    assert whole["reading"] == "chunks" and "chunk_windows" not in whole
    assert all(0 <= s["start"] <= s["end"] <= video.duration for s in whole["sentences"])
    assert "reading" not in short and "chunks" not in short


def test_the_ordered_partition_gives_each_sentence_in_order_the_clips_it_matches_best():
    alignment = np.full((3, 10), -2.0)  # A^VS [Ns, Nv]
    alignment[0, 0:2], alignment[1, 2:7], alignment[2, 7:10] = 3.0, 3.0, 3.0
    assert np.allclose(ordered_partition(alignment), [[0.0, 0.2], [0.2, 0.7], [0.7, 1.0]], atol=0.005)

    alignment[[0, 1]] = alignment[[1, 0]]  # the first sentence matches later clips than the second
    parts = ordered_partition(alignment)
    assert parts[0, 0] == 0.0 and np.isclose(parts[-1, 1], 1.0)
    assert (parts[1:, 0] == parts[:-1, 1]).all() and (parts[:, 1] - parts[:, 0] >= 0.1 - 1e-9).all()  # a clip each

    more_sentences_than_clips = ordered_partition(np.zeros((12, 10)))
    assert np.allclose(more_sentences_than_clips[:, 1] - more_sentences_than_clips[:, 0], 1 / 12)


def test_a_boundary_two_cuts_fit_equally_well_falls_between_them():
    alignment = np.full((3, 10), -2.0)  # A^VS [Ns, Nv]
    alignment[0, 0:3], alignment[1, 2:5], alignment[2, 5:10] = 3.0, 3.0, 3.0  # clip 2 fits sentences 0 and 1
    parts = ordered_partition(alignment)
    assert np.allclose(parts[:, 1], [0.25, 0.5, 1.0], atol=0.005)  # the single best cut would be 0.2 or 0.3


def test_a_model_trained_on_stories_leans_on_the_ordered_partition(small_world, story):
    folder, _ = small_world
    video, sentences = story
    trained = load_model(folder / "run" / "last.pt", torch.device("cpu"))
    assert trained.config.data.stories == 0
    plain = ground_paragraph(trained, video.features, video.duration, sentences)
    story_trained = dataclasses.replace(trained.config, data=dataclasses.replace(trained.config.data, stories=500))
    leaning = ground_paragraph(dataclasses.replace(trained, config=story_trained), video.features, video.duration,
                               sentences)  # fmt: skip
    # The partition of the video by the whole reading's A^VS, in seconds: the story-trained model's spans lie nearer.
    reader = _Reader(trained, video.features, torch.device("cpu"))
    whole = reader.spans([trained.vocab.encode(tokenize(s)) for s in sentences])
    partition = ordered_partition(whole.alignment) * video.duration  # [Ns, 2]

    def distance(result):
        return np.abs(np.array([[s["start"], s["end"]] for s in result["sentences"]]) - partition).mean()

    assert distance(leaning) < 0.6 * distance(plain)
    assert leaning["reading"] == plain["reading"] == "story" and leaning["chunks"] == plain["chunks"]
