"""Checks that need a CUDA device (pytest -m gpu); skipped without one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hscnet.config import Config
from hscnet.data import collate
from hscnet.extract.encoders import build_encoder
from hscnet.extract.settings import ExtractSettings
from hscnet.losses import total_loss
from hscnet.model import build_model

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


def test_c3d_fp16_autocast_matches_float32():
    clips = np.random.default_rng(0).integers(0, 255, (4, 16, 112, 112, 3), dtype=np.uint8)
    fp32 = build_encoder(ExtractSettings(device="cuda", precision="fp32")).encode(clips)
    fp16 = build_encoder(ExtractSettings(device="cuda", precision="fp16")).encode(clips)
    assert np.linalg.norm(fp16 - fp32) / np.linalg.norm(fp32) < 0.01


def test_a_bf16_autocast_training_step_at_the_papers_size():
    config = Config()
    model = build_model(config, torch.randn(100, 300)).cuda().train()
    rng = np.random.default_rng(0)
    items = [
        {
            "video": torch.randn(256, 500),
            "word_ids": [rng.integers(2, 100, 12).tolist() for _ in range(4)],
            "spans": torch.tensor([[0.1, 0.3], [0.2, 0.5], [0.4, 0.7], [0.6, 0.9]]),
            "duration": 100.0,
            "meta": {},
        }
        for _ in range(32)
    ]
    batch = collate(items).to("cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss, _ = total_loss(model(batch), batch, config.loss)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
