"""hscnet/losses.py (§3.5) on hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from hscnet.config import LossConfig
from hscnet.losses import (
    alignment_loss,
    clips_inside,
    generalized_iou,
    localization_loss,
    paragraph_alignment_loss,
    word_alignment_loss,
    word_subset_loss,
    word_union_loss,
)


def spans(*pairs):
    return torch.tensor(pairs, dtype=torch.float32)


@pytest.mark.parametrize(
    ("pred", "target", "expected"),
    [
        ((0.2, 0.6), (0.4, 0.8), 1 / 3),  # overlapping: 0.2 / 0.6
        ((0.0, 0.2), (0.5, 0.7), -0.3 / 0.7),  # disjoint: 0 - gap / hull
        ((0.2, 0.8), (0.4, 0.6), 1 / 3),  # nested
        ((0.4, 0.6), (0.5, 0.5), 0.0),  # zero-length target inside the prediction
        ((0.3, 0.7), (0.3, 0.7), 1.0),
    ],
)
def test_generalized_iou(pred, target, expected):
    assert generalized_iou(spans(pred), spans(target)).item() == pytest.approx(expected, abs=1e-5)


def test_localization_loss_is_l1_plus_one_minus_giou_over_real_entries():
    pred = spans((0.2, 0.6), (0.0, 0.2), (0.9, 1.0))
    target = spans((0.4, 0.8), (0.5, 0.7), (0.0, 0.1))
    mask = torch.tensor([True, True, False])
    expected = ((0.4 + (1 - 1 / 3)) + (1.0 + (1 + 0.3 / 0.7))) / 2
    assert localization_loss(pred, target, mask, LossConfig()).item() == pytest.approx(expected, rel=1e-5)
    weighted = localization_loss(pred, target, mask, LossConfig(l1=0.0, giou=2.0)).item()
    assert weighted == pytest.approx(((1 - 1 / 3) + (1 + 0.3 / 0.7)), rel=1e-5)


def test_clips_inside_uses_clip_centres_and_never_leaves_a_span_empty():
    video_mask = torch.tensor([[True, True, True, True, False, False]])  # 4 real clips, centres 1/8 .. 7/8
    inside = clips_inside(spans((0.3, 0.6), (0.55, 0.55), (0.0, 1.0))[None], video_mask)[0]
    assert inside.tolist() == [
        [False, True, False, False, False, False],
        [False, False, True, False, False, False],  # zero-length: the clip under its midpoint
        [True, True, True, True, False, False],  # padded clips are never inside
    ]


def test_alignment_loss_is_minus_log_of_the_softmax_mass_inside():
    similarity = torch.tensor([[[0.0, math.log(3.0), 0.0, 0.0, float("-inf")]]])  # softmax: 1/6, 3/6, 1/6, 1/6, 0
    inside = torch.tensor([[[False, True, False, False, False]]])
    assert alignment_loss(similarity, inside, torch.tensor([[True]])).item() == pytest.approx(math.log(2.0), rel=1e-5)
    inside[..., 0] = True  # mass 4/6
    assert alignment_loss(similarity, inside, torch.tensor([[True]])).item() == pytest.approx(math.log(1.5), rel=1e-5)


def test_words_inherit_their_sentence_span_and_the_paragraph_is_the_union():
    video_mask = torch.ones(1, 4, dtype=torch.bool)
    sentence_spans = spans((0.0, 0.25), (0.75, 1.0))[None]  # clips 0 and 3
    similarity = torch.tensor([[[5.0, 0.0, 0.0, 5.0]]])
    sentence_mask = torch.tensor([[True, True]])
    union = paragraph_alignment_loss(similarity, sentence_spans, sentence_mask, video_mask).item()
    expected = -math.log(2 * math.exp(5) / (2 * math.exp(5) + 2))  # clips 1, 2 lie between the sentences
    assert union == pytest.approx(expected, rel=1e-5)
    words = torch.tensor([[[9.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 9.0], [9.0, 0.0, 0.0, 0.0]]])
    word_sentence = torch.tensor([[0, 1, 1]])
    losses = word_alignment_loss(words, sentence_spans, word_sentence, torch.tensor([[True, True, False]]), video_mask)
    assert losses.item() == pytest.approx(-math.log(math.exp(9) / (math.exp(9) + 3)), abs=1e-6)


def test_weak_word_losses():
    sentence = spans((0.2, 0.6))[None]  # [1, 1, 2]
    words = spans((0.2, 0.3), (0.5, 0.6), (0.0, 1.0))[None, None]  # [1, 1, 3, 2]
    word_mask = torch.tensor([[[True, True, False]]])
    sentence_mask = torch.tensor([[True]])
    assert word_union_loss(words, sentence, word_mask, sentence_mask, LossConfig()).item() == pytest.approx(0, abs=1e-5)
    assert word_subset_loss(words, sentence, word_mask).item() == pytest.approx(0.0, abs=1e-7)
    sticking_out = spans((0.1, 0.5), (0.5, 0.7), (0.0, 1.0))[None, None]  # 0.1 before, 0.1 after
    assert word_subset_loss(sticking_out, sentence, word_mask).item() == pytest.approx(0.1, rel=1e-5)
    hull_loss = word_union_loss(sticking_out, sentence, word_mask, sentence_mask, LossConfig()).item()
    assert hull_loss == pytest.approx(0.2 + (1 - 0.4 / 0.6), rel=1e-5)  # hull (0.1, 0.7) vs (0.2, 0.6)
