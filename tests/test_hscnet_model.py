"""HSCNet (§3.2-3.4) with its losses: shapes, padding, gradients, ablations, learning."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from hscnet.config import Config
from hscnet.data import Batch, collate
from hscnet.losses import total_loss
from hscnet.model import SemanticAggregation, build_model, run_lstm

VOCAB = 40


def make_items(batch: int, num_clips: int, feature_dim: int, seed: int = 0, max_sentences: int = 5) -> list[dict]:
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(batch):
        count = int(rng.integers(1, max_sentences + 1))
        word_ids = [rng.integers(2, VOCAB, int(rng.integers(1, 8))).tolist() for _ in range(count)]
        spans = np.sort(rng.uniform(0, 1, (count, 2)), axis=1).astype(np.float32)
        video = torch.from_numpy(rng.standard_normal((num_clips, feature_dim)).astype(np.float32))
        items.append(
            {"video": video, "word_ids": word_ids, "spans": torch.from_numpy(spans), "duration": 60.0, "meta": {}}
        )
    return items


def small_config(**model) -> Config:
    config = Config()
    config.data.feature_dim = 24
    config.model = dataclasses.replace(
        config.model, **{"hidden_dim": 32, "heads": 4, "feature_encoder_layers": 1, **model}
    )
    return config


def build(config: Config, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(config, torch.randn(VOCAB, 12))


@pytest.mark.parametrize(("num_clips", "feature_dim", "depths"), [(256, 500, [1, 1, 1]), (512, 4096, [3, 3, 3])])
def test_output_shapes_at_the_papers_sizes(num_clips, feature_dim, depths):
    config = Config()
    config.data.feature_dim, config.model.depths = feature_dim, depths
    model = build(config).eval()
    batch = collate(make_items(2, num_clips, feature_dim))
    ns, nw, m = batch.sentence_mask.shape[1], batch.words.shape[1], batch.sentence_words.shape[2]
    with torch.no_grad():
        out = model(batch)
    assert out.final.shape == out.sentence.shape == (2, ns, 2)
    assert out.paragraph.shape == (2, 2) and out.word.shape == (2, ns, m, 2)
    assert out.align_word.shape == (2, nw, num_clips) and out.align_sentence.shape == (2, ns, num_clips)
    assert out.align_paragraph.shape == (2, 1, num_clips)
    assert len(model.encoder.sentence_encoder.layers) == depths[1]
    assert (out.final[..., 0] <= out.final[..., 1]).all()


def pad(batch: Batch, clips: int, words: int, sentences: int, word_slots: int) -> Batch:
    """The same batch with extra padded clips, words, sentences and word slots, full of garbage."""
    g = torch.Generator().manual_seed(5)

    def grow(tensor, sizes, fill):
        shape = [size + extra for size, extra in zip(tensor.shape, sizes, strict=False)] + list(
            tensor.shape[len(sizes) :]
        )
        grown = fill(shape)
        grown[tuple(slice(0, size) for size in tensor.shape)] = tensor
        return grown

    noise = lambda shape: torch.randn(shape, generator=g)  # noqa: E731
    ids = lambda shape: torch.randint(0, VOCAB, shape, generator=g)  # noqa: E731
    false = lambda shape: torch.zeros(shape, dtype=torch.bool)  # noqa: E731
    return Batch(
        video=grow(batch.video, (0, clips), noise),
        video_mask=grow(batch.video_mask, (0, clips), false),
        words=grow(batch.words, (0, words), ids),
        word_mask=grow(batch.word_mask, (0, words), false),
        word_sentence=grow(batch.word_sentence, (0, words), lambda s: torch.randint(0, 2, s, generator=g)),
        # Padded slots must still index the (padded) word sequence, as collate's zeros do.
        sentence_words=grow(
            batch.sentence_words,
            (0, sentences, word_slots),
            lambda s: torch.randint(0, batch.words.shape[1] + words, s, generator=g),
        ),
        sentence_word_mask=grow(batch.sentence_word_mask, (0, sentences, word_slots), false),
        sentence_mask=grow(batch.sentence_mask, (0, sentences), false),
        spans=grow(batch.spans, (0, sentences), lambda s: torch.rand(s, generator=g)),
        paragraph_span=batch.paragraph_span,
        duration=batch.duration,
    )


def test_padding_never_leaks_into_outputs_or_losses():
    config = small_config()
    model = build(config).eval()
    batch = collate(make_items(3, 20, 24, seed=1))
    padded = pad(batch, clips=7, words=5, sentences=2, word_slots=3)
    with torch.no_grad():
        out, out_padded = model(batch), model(padded)
        loss, terms = total_loss(out, batch, config.loss)
        loss_padded, terms_padded = total_loss(out_padded, padded, config.loss)
    ns, nw, nv, m = (
        batch.sentence_mask.shape[1],
        batch.words.shape[1],
        batch.video.shape[1],
        batch.sentence_words.shape[2],
    )
    real = batch.sentence_mask
    torch.testing.assert_close(out_padded.final[:, :ns][real], out.final[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_padded.sentence[:, :ns][real], out.sentence[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_padded.paragraph, out.paragraph, atol=1e-5, rtol=1e-5)
    words = batch.sentence_word_mask
    torch.testing.assert_close(out_padded.word[:, :ns, :m][words], out.word[words], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        out_padded.align_word[:, :nw, :nv][batch.word_mask], out.align_word[batch.word_mask], atol=1e-5, rtol=1e-5
    )
    torch.testing.assert_close(
        out_padded.align_sentence[:, :ns, :nv][real], out.align_sentence[real], atol=1e-5, rtol=1e-5
    )
    assert loss_padded.item() == pytest.approx(loss.item(), abs=1e-5)
    assert terms_padded == pytest.approx(terms, abs=1e-5)


def test_every_trainable_parameter_receives_a_gradient():
    config = small_config()
    config.text.freeze_embeddings = False
    model = build(config).train()
    batch = collate(make_items(4, 16, 24, seed=2))
    loss, terms = total_loss(model(batch), batch, config.loss)
    assert set(terms) == {
        "align_word",
        "align_sentence",
        "align_paragraph",
        "paragraph",
        "sentence",
        "word_union",
        "word_subset",
        "final",
    }
    loss.backward()
    silent = [
        name
        for name, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)
    ]
    assert silent == []
    assert not config.text.freeze_embeddings and model.text_encoder.embedding.weight.requires_grad


ABLATIONS = {
    # Table 2: levels
    "SL": {"model.word_level": False, "model.paragraph_level": False},
    "SL+PL": {"model.word_level": False},
    "SL+WL": {"model.paragraph_level": False},
    "SL+PL+WL": {},
    # Table 3: alignment losses (a few of its rows; every combination is a weight)
    "no alignment": {"loss.align_word": 0.0, "loss.align_sentence": 0.0, "loss.align_paragraph": 0.0},
    "only L_enc^VW": {"loss.align_sentence": 0.0, "loss.align_paragraph": 0.0},
    "L_enc^VS + L_enc^VP": {"loss.align_word": 0.0},
    # Table 4: decoders
    "SD": {"model.paragraph_decoder": False, "model.word_decoder": False},
    "SD+PD": {"model.word_decoder": False},
    "SD+WD": {"model.paragraph_decoder": False},
    "bidirectional LSTMs": {"model.bidirectional_lstm": True},
}


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_every_ablation_builds_and_trains_a_step(name):
    config = small_config()
    for key, value in ABLATIONS[name].items():
        section, field = key.split(".")
        setattr(getattr(config, section), field, value)
    model = build(config).train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    batch = collate(make_items(3, 16, 24, seed=3))
    out = model(batch)
    loss, terms = total_loss(out, batch, config.loss)
    before = [p.detach().clone() for p in model.parameters()]
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert (out.word is not None) == (config.model.word_level and config.model.word_decoder)
    assert (out.paragraph is not None) == (config.model.paragraph_level and config.model.paragraph_decoder)
    assert ("align_word" in terms) == (config.model.word_level and config.loss.align_word > 0)
    assert ("align_sentence" in terms) == (config.loss.align_sentence > 0)


def test_a_tiny_batch_is_overfitted():
    config = small_config(dropout=0.0, hidden_dim=64)
    config.data.feature_dim = 64
    model = build(config).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = collate(make_items(4, 32, 64, seed=4, max_sentences=3))
    first = None
    for _ in range(300):
        loss, _ = total_loss(model(batch), batch, config.loss)
        first = first if first is not None else loss.item()
        if loss.item() < 0.1 * first:
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1 * first, f"loss fell only from {first:.3f} to {loss.item():.3f}"


def test_eq5_and_the_lstms_run_in_float32_under_bf16_autocast():
    aggregate = SemanticAggregation(temperature=0.2)
    text, video = torch.randn(2, 3, 16), torch.randn(2, 10, 16)
    mask = torch.ones(2, 10, dtype=torch.bool)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        g, similarity = aggregate(text, video, mask)
        lstm = torch.nn.LSTM(16, 8, batch_first=True)
        states = run_lstm(lstm, torch.randn(2, 5, 16).bfloat16(), torch.tensor([5, 3]))
    assert g.dtype == similarity.dtype == states.dtype == torch.float32
    exact, _ = aggregate(text, video, mask)
    torch.testing.assert_close(g, exact)


def test_spans_stay_inside_the_video_as_the_losses_and_evaluation_both_read_them():
    from hscnet.model import SpanHead

    torch.manual_seed(0)
    head = SpanHead(8, 16)
    features = (torch.randn(4096, 8) * 30).requires_grad_()  # pushes the sigmoids to both ends
    spans = head(features)
    assert spans.min() >= 0 and spans.max() <= 1 and (spans[:, 0] <= spans[:, 1]).all()
    wide = spans[:, 1] - spans[:, 0]
    assert wide.max() > 0.9 and wide.min() < 0.1  # the whole range of widths is reachable
    assert spans[:, 0].min() < 0.05 and spans[:, 1].max() > 0.95  # spans reach both ends of the video
    (spans[:, 0] - 0.3).abs().sum().backward()
    assert features.grad.abs().sum() > 0
