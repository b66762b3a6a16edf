"""Forward + backward time of one HSCNet training step beside a plain Transformer encoder.

Run: .venv/bin/python benchmarks/model_step.py [--device cpu|cuda] [--repeats N] [--batch-scale K]

At the paper's ActivityNet (B 32, Nv 256, Dv 500, depths 1-1-1) and TACoS (B 16, Nv 512,
Dv 4096, depths 3-3-3) settings, with paragraphs of the datasets' mean size, it times one
step of HSCNet (all losses) and one step of `torch.nn.TransformerEncoder` with the same width
D, the same number of attention layers over the video+word token count, and the same input
projection. The headline is HSCNet time / plain time (target: at most 2). On CUDA (or on CPU
with --bf16) it also times both under bf16 autocast and compares one bf16 step's loss and
gradient with float32's. `--batch-scale K` runs both settings at K times their batch size.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch import nn

from hscnet.common.memory import keep_freed_memory
from hscnet.config import Config
from hscnet.data import collate
from hscnet.losses import total_loss
from hscnet.model import build_model

SETTINGS = {
    # name: batch, clips, feature dim, depths, sentences and words per sentence (dataset means)
    "ActivityNet": (32, 256, 500, [1, 1, 1], 4, 14),
    "TACoS": (16, 512, 4096, [3, 3, 3], 6, 9),
}


class PlainEncoder(nn.Module):
    def __init__(self, feature_dim: int, word_dim: int, dim: int, layers: int, heads: int):
        super().__init__()
        self.video = nn.Linear(feature_dim, dim)
        self.words = nn.Embedding(400, word_dim)
        self.text = nn.Linear(word_dim, dim)
        layer = nn.TransformerEncoderLayer(
            dim, heads, 4 * dim, 0.1, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(dim, 2)

    def forward(self, batch):
        tokens = torch.cat([self.video(batch.video), self.text(self.words(batch.words))], dim=1)
        mask = torch.cat([batch.video_mask, batch.word_mask], dim=1)
        return self.head(self.encoder(tokens, src_key_padding_mask=~mask)).float().abs().mean()


def make_batch(batch_size, clips, feature_dim, sentences, words, seed=0):
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(batch_size):
        count = int(rng.integers(max(1, sentences - 2), sentences + 3))
        items.append(
            {
                "video": torch.from_numpy(rng.standard_normal((clips, feature_dim)).astype(np.float32)),
                "word_ids": [
                    rng.integers(2, 400, int(rng.integers(words - 4, words + 5))).tolist() for _ in range(count)
                ],
                "spans": torch.from_numpy(np.sort(rng.uniform(0, 1, (count, 2)), axis=1).astype(np.float32)),
                "duration": 100.0,
                "meta": {},
            }
        )
    return collate(items)


def training_step(loss_of, model, batch, dtype, device):
    """One forward + backward of `loss_of(model, batch)`, under autocast when `dtype` is set."""

    def step():
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = loss_of(model, batch)
        loss.backward()
        model.zero_grad(set_to_none=True)

    return step


def time_step(step, repeats: int, device: torch.device) -> float:
    for _ in range(2):
        step()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def agreement(model, batch, config, device) -> str:
    """The loss and the gradient of one step in bf16 autocast beside float32, from the same weights
    and batch (dropout off, so that both see the same network)."""
    model.eval()
    for module in model.modules():
        if isinstance(module, nn.LSTM):  # cuDNN runs an LSTM's backward only in training mode; one layer has no dropout
            module.train()
    losses, grads = {}, {}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        model.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = total_loss(model(batch), batch, config.loss)[0]
        loss.backward()
        losses[name] = loss.item()
        grads[name] = torch.cat([p.grad.flatten().double() for p in model.parameters() if p.grad is not None])
    model.zero_grad(set_to_none=True)
    model.train()
    cosine = torch.nn.functional.cosine_similarity(grads["fp32"], grads["bf16"], dim=0).item()
    relative = abs(losses["bf16"] - losses["fp32"]) / abs(losses["fp32"])
    return (
        f"agreement: loss fp32 {losses['fp32']:.4f}, bf16 {losses['bf16']:.4f} ({relative:.2%} apart); "
        f"gradient cosine {cosine:.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bf16", action="store_true", help="also bf16 autocast on CPU (always on CUDA)")
    parser.add_argument("--batch-scale", type=int, default=1, help="the settings' batch sizes times this")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        keep_freed_memory()  # as bin/train runs its steps on a CPU
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"device {device} ({where})")
    with_bf16 = device.type == "cuda" or args.bf16
    precisions = [("fp32", None)] + ([("bf16 autocast", torch.bfloat16)] if with_bf16 else [])
    ratios = []
    for name, (batch_size, clips, feature_dim, depths, sentences, words) in SETTINGS.items():
        config = Config()
        config.data.feature_dim, config.model.depths = feature_dim, depths
        torch.manual_seed(0)
        hscnet = build_model(config, torch.randn(400, 300)).to(device).train()
        layers = config.model.feature_encoder_layers + sum(depths) + 2  # + the two video adapters
        plain = PlainEncoder(feature_dim, 300, config.model.hidden_dim, layers, config.model.heads).to(device).train()
        batch_size *= args.batch_scale
        batch = make_batch(batch_size, clips, feature_dim, sentences, words).to(device)
        tokens = batch.video.shape[1] + batch.words.shape[1]
        count = lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)  # noqa: E731
        print(
            f"{name}: B {batch_size}, Nv {clips}, Nw {batch.words.shape[1]}, Ns {batch.sentence_mask.shape[1]}, "
            f"depths {depths}; HSCNet {count(hscnet) / 1e6:.2f}M trainable parameters, "
            f"plain encoder {layers} layers over {tokens} tokens, {count(plain) / 1e6:.2f}M"
        )
        hscnet_loss = lambda model, batch, weights=config.loss: total_loss(model(batch), batch, weights)[0]  # noqa: E731
        plain_loss = lambda model, batch: model(batch)  # noqa: E731
        for precision, dtype in precisions:
            hscnet_time = time_step(training_step(hscnet_loss, hscnet, batch, dtype, device), args.repeats, device)
            plain_time = time_step(training_step(plain_loss, plain, batch, dtype, device), args.repeats, device)
            ratios.append(hscnet_time / plain_time)
            print(
                f"  {precision}: HSCNet step {hscnet_time * 1000:.1f} ms, "
                f"plain encoder step {plain_time * 1000:.1f} ms, ratio {hscnet_time / plain_time:.2f}"
            )
        if with_bf16:
            print("  " + agreement(hscnet, batch, config, device))
    print(f"HSCNet / plain encoder step time, worst setting, ratio: {max(ratios):.2f}")


if __name__ == "__main__":
    main()
