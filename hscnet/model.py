"""HSCNet, the Hierarchical Semantic Correspondence Network (Tan et al., CVPR 2023).

Read it beside the paper: the classes follow §3.2 (feature encoders), §3.3 (hierarchical
multi-modal encoder) and §3.4 (hierarchical progressive decoder) in order; the losses of §3.5
are in losses.py. Dimension names: B paragraphs, Nv clips, Nw words of a paragraph, Ns
sentences, M words of the longest sentence, D hidden size, Dv video features, De word vectors.

Where the paper leaves a detail open, this implementation chooses:
- Spans come from two sigmoids, a width w and a position p: start = p (1 - w), end = start + w.
  Every span lies inside [0, 1] with start <= end, by construction, so the span the losses train
  on is the span evaluation and bin/ground read, and every output has a gradient. The (centre,
  width) head of the DETR-style VPG regressor PRVG [26], start = c - w/2, end = c + w/2, reaches
  -0.5 and 1.5; evaluation clamped such spans while the losses saw them unclamped.
- Both feature encoders add sinusoidal positions [28] after projecting to D (clip index,
  and word index within the paragraph); they need no maximum length. The projection is
  followed by a LayerNorm: L2-normalised clip features are otherwise dwarfed by the
  unit-amplitude position codes (the reason [28] scales its embeddings).
- "Concatenation and projection" (§3.3): each modality has its own linear projection into the
  shared space, then the tokens are concatenated; one shared linear could not tell them apart.
- The sharpness σ of Eq. (1) is learned per head as log(1/σ), initialised to 1/σ = 10 as in
  cosine attention (Swin v2), and capped at 100 so that attention cannot collapse to one token.
- Every attention and MLP block is residual with a LayerNorm before it (pre-norm [28]);
  Eq. (4)'s cross-attention is added to the pooled token it starts from.
- 8 heads, dropout 0.1, a one-way LSTM in both decoders (sentences and words are read in
  temporal order); `bidirectional_lstm` switches to two-way.
- The final prediction's word stream is the word decoder's states g~^WS (Eq. 8); with the word
  decoder switched off (Table 4) it is the encoder's word features g^W, and with the word level
  switched off (Table 2) the final head reads g^SP alone.
- Switching a level off (Table 2) removes it from both encoder and decoder; the decoder
  switches (Table 4) only act where their level is on. Without the paragraph decoder (PD)
  g^P still conditions the sentence LSTM, since it comes from the encoder.
Padding never leaks: padded clips, words and sentences are masked out of every attention,
pooling and softmax, and the LSTMs read packed sequences.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from hscnet.common.errors import InputError
from hscnet.config import Config, ModelConfig, dataclass_from_dict


def sinusoidal_positions(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """The fixed position codes of [28]: [length, dim]."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    codes = torch.zeros(length, dim, device=device)
    codes[:, 0::2] = torch.sin(position * frequency)
    codes[:, 1::2] = torch.cos(position * frequency)
    return codes


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean of `values` over `dim`, counting only entries where `mask` is True."""
    weights = mask.unsqueeze(-1).to(values.dtype)
    return (values * weights).sum(dim) / weights.sum(dim).clamp(min=1.0)


def gather_words(words: torch.Tensor, sentence_words: torch.Tensor) -> torch.Tensor:
    """Paragraph-order word tokens [B, Nw, C] to sentence layout [B, Ns, M, C]."""
    batch, num_sentences, max_words = sentence_words.shape
    index = sentence_words.reshape(batch, -1, 1).expand(-1, -1, words.shape[-1])
    return words.gather(1, index).view(batch, num_sentences, max_words, words.shape[-1])


def self_attention_stack(dim: int, layers: int, heads: int, dropout: float) -> nn.TransformerEncoder:
    """A stack of standard pre-norm self-attention layers [28]."""
    layer = nn.TransformerEncoderLayer(
        dim, heads, 4 * dim, dropout, activation="gelu", batch_first=True, norm_first=True
    )
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class MLP(nn.Module):
    """Two linear layers with a GELU between them."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, dropout: float = 0.0):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden_dim, out_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class SpanHead(nn.Module):
    """The two-layer MLP predictor of §3.4: features [..., C] to spans [..., 2] = (start, end)."""

    def __init__(self, in_dim: int, hidden_dim: int):
        super().__init__()
        self.mlp = MLP(in_dim, hidden_dim, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        position, width = torch.sigmoid(self.mlp(x).float()).unbind(-1)  # [...], [...]
        start = position * (1 - width)  # the span [start, start + w] stays inside [0, 1]
        return torch.stack([start, start + width], dim=-1)  # [..., 2]


# ========================================================================================
# §3.2 Feature encoders
# ========================================================================================


class VideoEncoder(nn.Module):
    """§3.2: clip features projected to D, plus positions, through a three-layer self-attention network."""

    def __init__(self, feature_dim: int, hidden_dim: int, layers: int, heads: int, dropout: float):
        super().__init__()
        self.project = nn.Sequential(nn.Linear(feature_dim, hidden_dim), nn.LayerNorm(hidden_dim), nn.Dropout(dropout))
        self.attention = self_attention_stack(hidden_dim, layers, heads, dropout)

    def forward(self, video: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
        """video [B, Nv, Dv], video_mask [B, Nv] -> F^V [B, Nv, D]."""
        x = self.project(video)  # [B, Nv, D]
        x = x + sinusoidal_positions(x.shape[1], x.shape[2], x.device)
        return self.attention(x, src_key_padding_mask=~video_mask)


class TextEncoder(nn.Module):
    """§3.2: GloVe word vectors projected to D, plus positions, through a three-layer self-attention network."""

    def __init__(
        self, vocab_size: int, word_dim: int, *, freeze: bool, hidden_dim: int, layers: int, heads: int, dropout: float
    ):
        super().__init__()
        # The vectors themselves arrive with the weights: `build_model`, or a checkpoint's state dict.
        self.embedding = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        self.embedding.weight.requires_grad_(not freeze)
        self.project = nn.Sequential(nn.Linear(word_dim, hidden_dim), nn.LayerNorm(hidden_dim), nn.Dropout(dropout))
        self.attention = self_attention_stack(hidden_dim, layers, heads, dropout)

    def forward(self, words: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        """words [B, Nw] (ids), word_mask [B, Nw] -> F^W [B, Nw, D]."""
        x = self.project(self.embedding(words))  # [B, Nw, D]
        x = x + sinusoidal_positions(x.shape[1], x.shape[2], x.device)
        return self.attention(x, src_key_padding_mask=~word_mask)


# ========================================================================================
# §3.3 Hierarchical multi-modal encoder
# ========================================================================================


class CosineSelfAttention(nn.Module):
    """Eq. (1)-(2): multi-head self-attention scored by cosine similarity with learned sharpness.

    s_ij = cos(φ(M_i), ρ(M_j)) / σ and H = Softmax(s) ψ(M). Normalising the projected queries
    and keys and scaling the queries by 1/σ turns Eq. (1) into the fused
    `scaled_dot_product_attention` with scale 1.
    """

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.phi = nn.Linear(dim, dim)  # φ: queries
        self.rho = nn.Linear(dim, dim)  # ρ: keys
        self.psi = nn.Linear(dim, dim)  # ψ: values
        self.out = nn.Linear(dim, dim)  # joins the heads [28]
        self.log_inverse_sigma = nn.Parameter(torch.full((heads, 1, 1), math.log(10.0)))
        self.dropout = dropout

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        return x.view(batch, length, self.heads, dim // self.heads).transpose(1, 2)  # [B, h, N, D/h]

    def forward(self, m: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """m [B, N, D] (N = Nv + Nt), mask [B, N] -> H [B, N, D]."""
        inverse_sigma = self.log_inverse_sigma.clamp(max=math.log(100.0)).exp()  # [h, 1, 1]
        q = F.normalize(self._split(self.phi(m)), dim=-1) * inverse_sigma  # [B, h, N, D/h]
        k = F.normalize(self._split(self.rho(m)), dim=-1)  # [B, h, N, D/h]
        v = self._split(self.psi(m))  # [B, h, N, D/h]
        h = F.scaled_dot_product_attention(
            q,
            k.to(q.dtype),
            v.to(q.dtype),
            attn_mask=mask[:, None, None, :],
            scale=1.0,
            dropout_p=self.dropout if self.training else 0.0,
        )  # [B, h, N, D/h]
        return self.out(h.transpose(1, 2).flatten(2))  # [B, N, D]


class MultiModalLayer(nn.Module):
    """One layer k of a level's encoder (§3.3): project and concatenate video and text into
    M^(k), apply Eq. (1)-(2), then two unshared MLPs give V^(k+1) and Q^(k+1)."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.project_video = nn.Linear(dim, dim)
        self.project_text = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.attention = CosineSelfAttention(dim, heads, dropout)
        self.drop = nn.Dropout(dropout)
        self.norm_video, self.norm_text = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.mlp_video = MLP(dim, 4 * dim, dim, dropout)
        self.mlp_text = MLP(dim, 4 * dim, dim, dropout)

    def forward(self, video, text, video_mask, text_mask):
        """video [B, Nv, D], text [B, Nt, D], masks [B, Nv] / [B, Nt] -> (V' [B, Nv, D], Q' [B, Nt, D])."""
        num_clips = video.shape[1]
        m = torch.cat([self.project_video(video), self.project_text(text)], dim=1)  # M^(k): [B, Nv+Nt, D]
        mask = torch.cat([video_mask, text_mask], dim=1)  # [B, Nv+Nt]
        h = m + self.drop(self.attention(self.norm(m), mask))  # H^(k+1): [B, Nv+Nt, D]
        h_video, h_text = h[:, :num_clips], h[:, num_clips:]
        video = h_video + self.drop(self.mlp_video(self.norm_video(h_video)))  # V^(k+1): [B, Nv, D]
        text = h_text + self.drop(self.mlp_text(self.norm_text(h_text)))  # Q^(k+1): [B, Nt, D]
        return video, text


class LevelEncoder(nn.Module):
    """A stack of C_l multi-modal layers: the word-, sentence- or paragraph-level encoder of §3.3."""

    def __init__(self, depth: int, dim: int, heads: int, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList(MultiModalLayer(dim, heads, dropout) for _ in range(depth))

    def forward(self, video, text, video_mask, text_mask):
        """video [B, Nv, D], text [B, Nt, D] -> (V^(C_l) [B, Nv, D], Q^(C_l) [B, Nt, D])."""
        for layer in self.layers:
            video, text = layer(video, text, video_mask, text_mask)
        return video, text


class QueryInduction(nn.Module):
    """Eq. (3)-(4): pooled tokens (Ω) query the lower level's tokens by cross-attention [28],
    inducing the next level's initial textual tokens (sentences from words, the paragraph
    from sentences)."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.norm_query, self.norm_memory = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)

    def forward(self, pooled: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
        """pooled Ω [B, Nq, D], memory [B, Nk, D], memory_mask [B, Nk] -> Q^(0) [B, Nq, D]."""
        memory = self.norm_memory(memory)
        attended, _ = self.attention(
            self.norm_query(pooled), memory, memory, key_padding_mask=~memory_mask, need_weights=False
        )
        return pooled + attended


class SemanticAggregation(nn.Module):
    """Eq. (5)-(6): visual-to-textual aggregation at one level.

    A = Q̄ V̄^T / τ (cosine similarities of every query to every clip) and
    g = [Q̄ ; Softmax(A) V̄], the grounding feature of each query (2D channels).
    """

    def __init__(self, temperature: float):
        super().__init__()
        self.temperature = temperature

    def forward(self, text: torch.Tensor, video: torch.Tensor, video_mask: torch.Tensor):
        """text [B, Nq, D], video [B, Nv, D], video_mask [B, Nv] -> (g [B, Nq, 2D], A [B, Nq, Nv])."""
        # In float32 even under bf16 autocast: cosines divided by τ = 0.2 span [-5, 5], and the
        # alignment losses and the pooled visual features need them finer than bf16's 8 bits.
        with torch.autocast(text.device.type, enabled=False):
            q = F.normalize(text.float(), dim=-1)  # Q̄: [B, Nq, D]
            v = F.normalize(video.float(), dim=-1)  # V̄: [B, Nv, D]
            similarity = q @ v.transpose(1, 2) / self.temperature  # A: [B, Nq, Nv]
            similarity = similarity.masked_fill(~video_mask[:, None, :], float("-inf"))
            g = torch.cat([q, torch.softmax(similarity, dim=-1) @ v], dim=-1)  # [B, Nq, 2D]
        return g, similarity


@dataclass
class EncoderOutput:
    """The grounding features g^ℓ of Eq. (6) and the similarity matrices A^Vℓ of Eq. (5)."""

    g_word: torch.Tensor | None  # [B, Nw, 2D]
    g_sentence: torch.Tensor  # [B, Ns, 2D]
    g_paragraph: torch.Tensor | None  # [B, 1, 2D]
    align_word: torch.Tensor | None  # [B, Nw, Nv]
    align_sentence: torch.Tensor  # [B, Ns, Nv]
    align_paragraph: torch.Tensor | None  # [B, 1, Nv]


class HierarchicalEncoder(nn.Module):
    """§3.3: word-, sentence- and paragraph-level encoders, bottom up, then Eq. (5)-(6) at each level.

    Without the word level (Table 2), the sentences are induced from the text encoder's words
    and the sentence level reads the video encoder's clips (through its adapting layer).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        depths: list[int],
        dropout: float,
        *,
        temperature: float,
        word_level: bool,
        paragraph_level: bool,
    ):
        super().__init__()
        self.word_level, self.paragraph_level = word_level, paragraph_level
        self.word_encoder = LevelEncoder(depths[0], dim, heads, dropout) if word_level else None
        self.sentence_induction = QueryInduction(dim, heads, dropout)
        self.sentence_video_adapter = self_attention_stack(dim, 1, heads, dropout)
        self.sentence_encoder = LevelEncoder(depths[1], dim, heads, dropout)
        if paragraph_level:
            self.paragraph_induction = QueryInduction(dim, heads, dropout)
            self.paragraph_video_adapter = self_attention_stack(dim, 1, heads, dropout)
            self.paragraph_encoder = LevelEncoder(depths[2], dim, heads, dropout)
        self.aggregate = SemanticAggregation(temperature)

    def forward(self, video: torch.Tensor, words: torch.Tensor, batch) -> EncoderOutput:
        """video F^V [B, Nv, D], words F^W [B, Nw, D]; from the `data.Batch`: video_mask [B, Nv],
        word_mask [B, Nw], sentence_words [B, Ns, M] (index into Nw), sentence_word_mask [B, Ns, M],
        sentence_mask [B, Ns]."""
        video_mask, word_mask, sentence_mask = batch.video_mask, batch.word_mask, batch.sentence_mask
        sentence_words, sentence_word_mask = batch.sentence_words, batch.sentence_word_mask
        g_word = align_word = g_paragraph = align_paragraph = None
        if self.word_level:
            # Word level: V^VW(0) = F^V, Q^VW(0) = F^W.
            video, words = self.word_encoder(video, words, video_mask, word_mask)  # [B, Nv, D], [B, Nw, D]
            g_word, align_word = self.aggregate(words, video, video_mask)  # [B, Nw, 2D], [B, Nw, Nv]

        # Sentence level: word pooling (Eq. 3), cross-attention (Eq. 4), adapted video.
        pooled = masked_mean(gather_words(words, sentence_words), sentence_word_mask, dim=2)  # Ω^VS: [B, Ns, D]
        sentences = self.sentence_induction(pooled, words, word_mask)  # Q^VS(0): [B, Ns, D]
        video = self.sentence_video_adapter(video, src_key_padding_mask=~video_mask)  # V^VS(0): [B, Nv, D]
        video, sentences = self.sentence_encoder(video, sentences, video_mask, sentence_mask)
        g_sentence, align_sentence = self.aggregate(sentences, video, video_mask)  # [B, Ns, 2D], [B, Ns, Nv]

        if self.paragraph_level:
            # Paragraph level: sentence pooling, cross-attention, adapted video.
            pooled = masked_mean(sentences, sentence_mask, dim=1)[:, None]  # Ω^VP: [B, 1, D]
            paragraph = self.paragraph_induction(pooled, sentences, sentence_mask)  # Q^VP(0): [B, 1, D]
            video = self.paragraph_video_adapter(video, src_key_padding_mask=~video_mask)  # V^VP(0): [B, Nv, D]
            one = torch.ones_like(sentence_mask[:, :1])  # [B, 1]
            video, paragraph = self.paragraph_encoder(video, paragraph, video_mask, one)
            g_paragraph, align_paragraph = self.aggregate(paragraph, video, video_mask)  # [B, 1, 2D], [B, 1, Nv]
        return EncoderOutput(g_word, g_sentence, g_paragraph, align_word, align_sentence, align_paragraph)


# ========================================================================================
# §3.4 Hierarchical progressive decoder
# ========================================================================================


def run_lstm(lstm: nn.LSTM, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """An LSTM over padded sequences [R, L, C] with real lengths [R] (>= 1): [R, L, H], zeros past each length.

    In float32 even under autocast (which would run the gates' matmuls in bf16): a recurrence
    compounds each step's rounding."""
    with torch.autocast(inputs.device.type, enabled=False):
        packed = pack_padded_sequence(inputs.float(), lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, _ = lstm(packed)
        outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=inputs.shape[1])
    return outputs


class ParagraphDecoder(nn.Module):
    """§3.4: a linear layer on g^P, then a two-layer MLP predictor: T~^P [B, 2]."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(2 * dim, dim)
        self.head = SpanHead(dim, dim)

    def forward(self, g_paragraph: torch.Tensor) -> torch.Tensor:
        """g_paragraph [B, 1, 2D] -> [B, 2]."""
        return self.head(self.linear(g_paragraph[:, 0]))


class SentenceDecoder(nn.Module):
    """Eq. (7): an LSTM over [g^S_i ; g^P] in sentence order gives g^SP, then an MLP: T~^S [B, Ns, 2]."""

    def __init__(self, dim: int, with_paragraph: bool, bidirectional: bool):
        super().__init__()
        self.with_paragraph = with_paragraph
        in_dim = 4 * dim if with_paragraph else 2 * dim
        self.lstm = nn.LSTM(in_dim, dim // 2 if bidirectional else dim, batch_first=True, bidirectional=bidirectional)
        self.head = SpanHead(dim, dim)

    def forward(self, g_sentence, g_paragraph, sentence_mask):
        """g_sentence [B, Ns, 2D], g_paragraph [B, 1, 2D] or None -> (g^SP [B, Ns, D], T~^S [B, Ns, 2])."""
        inputs = g_sentence
        if self.with_paragraph:
            inputs = torch.cat([g_sentence, g_paragraph.expand(-1, g_sentence.shape[1], -1)], dim=-1)  # [B, Ns, 4D]
        g_sp = run_lstm(self.lstm, inputs.float(), sentence_mask.sum(1))  # [B, Ns, D]
        return g_sp, self.head(g_sp)


class WordDecoder(nn.Module):
    """Eq. (8): for each sentence i, an LSTM over its words [g~^W_ij ; g^SP_i] gives g~^WS,
    then an MLP: word spans T~^W [B, Ns, M, 2]."""

    def __init__(self, dim: int, bidirectional: bool):
        super().__init__()
        self.lstm = nn.LSTM(3 * dim, dim // 2 if bidirectional else dim, batch_first=True, bidirectional=bidirectional)
        self.head = SpanHead(dim, dim)

    def forward(self, g_word_layout, g_sp, sentence_word_mask, sentence_mask):
        """g_word_layout g~^W [B, Ns, M, 2D], g_sp [B, Ns, D] -> (g~^WS [B, Ns, M, D], T~^W [B, Ns, M, 2])."""
        batch, num_sentences, max_words, _ = g_word_layout.shape
        inputs = torch.cat([g_word_layout, g_sp[:, :, None].expand(-1, -1, max_words, -1)], dim=-1)  # [B, Ns, M, 3D]
        states = g_sp.new_zeros(batch, num_sentences, max_words, g_sp.shape[-1])  # [B, Ns, M, D]
        states[sentence_mask] = run_lstm(
            self.lstm, inputs[sentence_mask].float(), sentence_word_mask[sentence_mask].sum(-1)
        )
        return states, self.head(states)


class GroundingPrediction(nn.Module):
    """§3.4, final prediction: each sentence's g^SP selects its relevant words by cross-attention
    (g^WS), and a two-layer MLP on [g^WS ; g^SP] gives T^ [B, Ns, 2]."""

    def __init__(self, dim: int, heads: int, dropout: float, word_dim: int | None):
        super().__init__()
        self.uses_words = word_dim is not None
        if self.uses_words:
            self.project_words = nn.Linear(word_dim, dim) if word_dim != dim else nn.Identity()
            self.norm_query, self.norm_words = nn.LayerNorm(dim), nn.LayerNorm(dim)
            self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.head = SpanHead(2 * dim if self.uses_words else dim, dim)

    def forward(self, g_sp, word_states, sentence_word_mask, sentence_mask):
        """g_sp [B, Ns, D], word_states [B, Ns, M, Dw] or None -> T^ [B, Ns, 2]."""
        if not self.uses_words:
            return self.head(g_sp)
        query = self.norm_query(g_sp[sentence_mask])[:, None]  # [S, 1, D], S real sentences
        words = self.norm_words(self.project_words(word_states[sentence_mask]))  # [S, M, D]
        selected, _ = self.attention(
            query, words, words, key_padding_mask=~sentence_word_mask[sentence_mask], need_weights=False
        )
        g_ws = g_sp.new_zeros(g_sp.shape)  # [B, Ns, D]
        g_ws[sentence_mask] = selected[:, 0].to(g_ws.dtype)
        return self.head(torch.cat([g_ws, g_sp], dim=-1))  # [B, Ns, 2]


@dataclass
class HSCNetOutput:
    """Predicted spans, normalised to the video ([0, 1]), and the encoder's similarity matrices."""

    final: torch.Tensor  # T^ [B, Ns, 2]
    sentence: torch.Tensor  # T~^S [B, Ns, 2]
    paragraph: torch.Tensor | None  # T~^P [B, 2]
    word: torch.Tensor | None  # T~^W [B, Ns, M, 2]
    align_word: torch.Tensor | None  # A^VW [B, Nw, Nv]
    align_sentence: torch.Tensor  # A^VS [B, Ns, Nv]
    align_paragraph: torch.Tensor | None  # A^VP [B, 1, Nv]


@dataclass(frozen=True)
class ModelArgs:
    """Everything HSCNet's constructor takes: the config's model section (`ModelConfig`, the one
    home of the model's defaults) and what the data fixes. A checkpoint stores it whole, and the
    model is rebuilt from it; the word vectors come back with the weights."""

    model: ModelConfig
    feature_dim: int  # Dv
    vocab_size: int
    word_dim: int  # De, the word vectors' size
    freeze_embeddings: bool

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, obj: dict, where: str) -> ModelArgs:
        return dataclass_from_dict(cls, obj, where)


class HSCNet(nn.Module):
    """The whole model of Figure 2: feature encoders, hierarchical encoder, progressive decoder."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        config = args.model
        if len(config.depths) != 3 or min(config.depths) < 1:
            raise InputError(f"model.depths must be three positive layer counts (C1, C2, C3), got {config.depths}")
        self.args = args
        self.word_level, self.paragraph_level = config.word_level, config.paragraph_level
        self.uses_paragraph_decoder = config.paragraph_level and config.paragraph_decoder
        self.uses_word_decoder = config.word_level and config.word_decoder
        dim, heads, dropout = config.hidden_dim, config.heads, config.dropout
        self.video_encoder = VideoEncoder(args.feature_dim, dim, config.feature_encoder_layers, heads, dropout)
        self.text_encoder = TextEncoder(
            args.vocab_size,
            args.word_dim,
            freeze=args.freeze_embeddings,
            hidden_dim=dim,
            layers=config.feature_encoder_layers,
            heads=heads,
            dropout=dropout,
        )
        self.encoder = HierarchicalEncoder(
            dim,
            heads,
            list(config.depths),
            dropout,
            temperature=config.temperature,
            word_level=config.word_level,
            paragraph_level=config.paragraph_level,
        )
        self.paragraph_decoder = ParagraphDecoder(dim) if self.uses_paragraph_decoder else None
        self.sentence_decoder = SentenceDecoder(dim, config.paragraph_level, config.bidirectional_lstm)
        self.word_decoder = WordDecoder(dim, config.bidirectional_lstm) if self.uses_word_decoder else None
        word_dim = (dim if self.uses_word_decoder else 2 * dim) if config.word_level else None
        self.prediction = GroundingPrediction(dim, heads, dropout, word_dim)

    def forward(self, batch) -> HSCNetOutput:
        """Reads from a `data.Batch`: video [B, Nv, Dv], video_mask [B, Nv], words [B, Nw],
        word_mask [B, Nw], sentence_words / sentence_word_mask [B, Ns, M], sentence_mask [B, Ns]."""
        f_video = self.video_encoder(batch.video, batch.video_mask)  # F^V: [B, Nv, D]
        f_words = self.text_encoder(batch.words, batch.word_mask)  # F^W: [B, Nw, D]
        encoded = self.encoder(f_video, f_words, batch)

        paragraph = self.paragraph_decoder(encoded.g_paragraph) if self.paragraph_decoder else None  # [B, 2]
        g_sp, sentence = self.sentence_decoder(
            encoded.g_sentence, encoded.g_paragraph, batch.sentence_mask
        )  # [B, Ns, D], [B, Ns, 2]
        word = word_states = None
        if self.word_level:
            word_states = gather_words(encoded.g_word, batch.sentence_words)  # g~^W: [B, Ns, M, 2D]
            if self.word_decoder is not None:
                word_states, word = self.word_decoder(word_states, g_sp, batch.sentence_word_mask, batch.sentence_mask)
        final = self.prediction(g_sp, word_states, batch.sentence_word_mask, batch.sentence_mask)  # [B, Ns, 2]
        return HSCNetOutput(
            final, sentence, paragraph, word, encoded.align_word, encoded.align_sentence, encoded.align_paragraph
        )


def build_model(config: Config, word_vectors: torch.Tensor) -> HSCNet:
    """A new model for `config` and a vocabulary's word vectors [V, De] (row 0 padding)."""
    word_vectors = torch.as_tensor(word_vectors, dtype=torch.float32)
    args = ModelArgs(
        model=config.model,
        feature_dim=config.data.feature_dim,
        vocab_size=word_vectors.shape[0],
        word_dim=word_vectors.shape[1],
        freeze_embeddings=config.text.freeze_embeddings,
    )
    model = HSCNet(args)
    with torch.no_grad():
        model.text_encoder.embedding.weight.copy_(word_vectors)
    return model
