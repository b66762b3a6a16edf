"""§3.5 Training losses: one function per term, summed by Eq. (11) with the config's weights.

All spans are normalised (start, end) in [0, 1]. Padded queries (words, sentences) and padded
clips take no part: each term is a mean over the real entries only.

Where the paper defers to its supplementary material, this implementation chooses:
- Alignment (Eq. 9): -log of the softmax-over-clips mass inside the query's ground truth. A
  clip is inside a span when its centre is; a span too short to hold a centre still owns the
  clip under its midpoint. A word's span is its sentence's; the paragraph's is the set union
  of its sentences' spans (clips between two sentences are not the paragraph's).
- Localisation (L_dec^P, L_dec^S, L_grd): L1 on (start, end) plus 1 - GIoU [24]. The paragraph
  decoder predicts one span, so its target is the hull of the sentences (§3.4's "temporal union").
- L_union: the hull of a sentence's word spans (earliest start, latest end) against the
  sentence's span, with the same L1 + GIoU.
- L_subset: how far each word span sticks out of its sentence's span,
  relu(s_sentence - s_word) + relu(e_word - e_sentence), averaged over real words.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hscnet.config import LossConfig


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def generalized_iou(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """GIoU [24] of 1-D spans [..., 2] -> [...], in [-1, 1]."""
    pred_start, pred_end = pred.unbind(-1)
    start, end = target.unbind(-1)
    intersection = (torch.minimum(pred_end, end) - torch.maximum(pred_start, start)).clamp(min=0)
    union = (pred_end - pred_start).clamp(min=0) + (end - start) - intersection
    hull = torch.maximum(pred_end, end) - torch.minimum(pred_start, start)
    return intersection / (union + eps) - (hull - union) / (hull + eps)


def localization_loss(pred, target, mask, weights: LossConfig) -> torch.Tensor:
    """L1 distance plus (1 - GIoU) between spans [..., 2], averaged over `mask` [...]."""
    l1 = (pred - target).abs().sum(-1)
    giou = 1.0 - generalized_iou(pred, target)
    return _masked_mean(weights.l1 * l1 + weights.giou * giou, mask)


def clips_inside(spans: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
    """Which clips fall inside each span: spans [B, Nq, 2], video_mask [B, Nv] -> [B, Nq, Nv] bool."""
    num_clips = video_mask.sum(1, keepdim=True).to(spans.dtype)  # [B, 1] real clips
    index = torch.arange(video_mask.shape[1], device=spans.device, dtype=spans.dtype)  # [Nv]
    centres = ((index + 0.5) / num_clips)[:, None, :]  # [B, 1, Nv]
    start, end = spans[..., :1], spans[..., 1:]  # [B, Nq, 1]
    inside = (centres >= start) & (centres <= end)
    midpoint_clip = ((start + end) / 2 * num_clips[:, None]).floor().clamp(max=num_clips[:, None] - 1)  # [B, Nq, 1]
    inside |= index[None, None, :] == midpoint_clip
    return inside & video_mask[:, None, :]


def alignment_loss(similarity: torch.Tensor, inside: torch.Tensor, query_mask: torch.Tensor) -> torch.Tensor:
    """-log Σ_{clips inside} Softmax_clips(A): similarity A [B, Nq, Nv] (-inf on padded clips),
    inside [B, Nq, Nv], query_mask [B, Nq]."""
    log_probability = F.log_softmax(similarity.float(), dim=-1)
    inside_mass = torch.logsumexp(log_probability.masked_fill(~inside, float("-inf")), dim=-1)  # [B, Nq]
    return _masked_mean(-inside_mass.masked_fill(~query_mask, 0.0), query_mask)


def word_alignment_loss(similarity, spans, word_sentence, word_mask, video_mask) -> torch.Tensor:
    """L_enc^VW (Eq. 9) on A^VW [B, Nw, Nv]: each word is aligned with its sentence's span."""
    word_spans = spans.gather(1, word_sentence[..., None].expand(-1, -1, 2))  # [B, Nw, 2]
    return alignment_loss(similarity, clips_inside(word_spans, video_mask), word_mask)


def sentence_alignment_loss(similarity, spans, sentence_mask, video_mask) -> torch.Tensor:
    """L_enc^VS (Eq. 9) on A^VS [B, Ns, Nv]."""
    return alignment_loss(similarity, clips_inside(spans, video_mask), sentence_mask)


def paragraph_alignment_loss(similarity, spans, sentence_mask, video_mask) -> torch.Tensor:
    """L_enc^VP (Eq. 9) on A^VP [B, 1, Nv]: inside means inside any of the paragraph's sentences."""
    inside = (clips_inside(spans, video_mask) & sentence_mask[..., None]).any(1, keepdim=True)  # [B, 1, Nv]
    return alignment_loss(similarity, inside, torch.ones_like(sentence_mask[:, :1]))


def paragraph_decoder_loss(pred, paragraph_span, weights: LossConfig) -> torch.Tensor:
    """L_dec^P (Eq. 10): T~^P [B, 2] against the hull of the sentences [B, 2]."""
    return localization_loss(pred, paragraph_span, torch.ones_like(pred[:, 0], dtype=torch.bool), weights)


def sentence_decoder_loss(pred, spans, sentence_mask, weights: LossConfig) -> torch.Tensor:
    """L_dec^S (Eq. 10): T~^S [B, Ns, 2] against the sentences' spans."""
    return localization_loss(pred, spans, sentence_mask, weights)


def word_union_loss(word_spans, spans, sentence_word_mask, sentence_mask, weights: LossConfig) -> torch.Tensor:
    """L_union^W (Eq. 10): the hull of a sentence's word spans T~^W [B, Ns, M, 2] against its span."""
    starts = word_spans[..., 0].masked_fill(~sentence_word_mask, float("inf")).amin(-1)  # [B, Ns]
    ends = word_spans[..., 1].masked_fill(~sentence_word_mask, float("-inf")).amax(-1)  # [B, Ns]
    hull = torch.stack([starts, ends], -1).masked_fill(~sentence_mask[..., None], 0.0)  # [B, Ns, 2]
    return localization_loss(hull, spans, sentence_mask, weights)


def word_subset_loss(word_spans, spans, sentence_word_mask) -> torch.Tensor:
    """L_subset^W (Eq. 10): how far each word span T~^W [B, Ns, M, 2] leaves its sentence's span."""
    outside = F.relu(spans[:, :, None, 0] - word_spans[..., 0]) + F.relu(word_spans[..., 1] - spans[:, :, None, 1])
    return _masked_mean(outside, sentence_word_mask)


def grounding_loss(pred, spans, sentence_mask, weights: LossConfig) -> torch.Tensor:
    """L_grd: the final prediction T^ [B, Ns, 2] against the sentences' spans."""
    return localization_loss(pred, spans, sentence_mask, weights)


def total_loss(output, batch, weights: LossConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq. (11): L_total = L_enc + L_dec + L_grd, each term weighted; terms whose weight is 0
    or whose level the model does not have are left out. Returns the loss and each term."""
    terms: dict[str, torch.Tensor] = {}
    if weights.align_word and output.align_word is not None:
        terms["align_word"] = word_alignment_loss(
            output.align_word, batch.spans, batch.word_sentence, batch.word_mask, batch.video_mask
        )
    if weights.align_sentence:
        terms["align_sentence"] = sentence_alignment_loss(
            output.align_sentence, batch.spans, batch.sentence_mask, batch.video_mask
        )
    if weights.align_paragraph and output.align_paragraph is not None:
        terms["align_paragraph"] = paragraph_alignment_loss(
            output.align_paragraph, batch.spans, batch.sentence_mask, batch.video_mask
        )
    if weights.paragraph and output.paragraph is not None:
        terms["paragraph"] = paragraph_decoder_loss(output.paragraph, batch.paragraph_span, weights)
    if weights.sentence:
        terms["sentence"] = sentence_decoder_loss(output.sentence, batch.spans, batch.sentence_mask, weights)
    if output.word is not None:
        if weights.word_union:
            terms["word_union"] = word_union_loss(
                output.word, batch.spans, batch.sentence_word_mask, batch.sentence_mask, weights
            )
        if weights.word_subset:
            terms["word_subset"] = word_subset_loss(output.word, batch.spans, batch.sentence_word_mask)
    if weights.final:
        terms["final"] = grounding_loss(output.final, batch.spans, batch.sentence_mask, weights)
    total = sum(getattr(weights, name) * value for name, value in terms.items())
    return total, {name: float(value.detach()) for name, value in terms.items()}
