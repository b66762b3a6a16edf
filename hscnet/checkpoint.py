"""Checkpoints: everything `bin/eval` and `bin/ground` need, loadable without running code.

A checkpoint holds the model weights, the resolved config, the vocabulary, the feature
settings the model was trained on, the dataset prior of `bin/eval`, and the optimiser and
random states that let `bin/train --resume` continue exactly. It is written atomically and
read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from extract.atomic import atomic_path
from extract.errors import InputError
from extract.text import Vocabulary
from hscnet.config import Config, config_from_dict
from hscnet.model import HSCNet, build_model

FORMAT = "hscnet-checkpoint/1"


def save_checkpoint(path: str | os.PathLike, content: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **content}, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a damaged or foreign file
        raise InputError(f"{path}: not a loadable checkpoint ({type(error).__name__}: {error})") from error
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise InputError(f"{path}: not an HSCNet checkpoint of this tool (format {FORMAT})")
    return content


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {name!r} asked for, but no CUDA device is available (train.device=auto picks one)")
    if name != "cpu" and not name.startswith("cuda"):
        raise InputError(f"unknown device {name!r}: use auto, cpu or cuda")
    return torch.device(name)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA by default, float32 (no autocast) on CPU."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    if precision in {"fp32", "float32"}:
        return None
    if precision in {"bf16", "bfloat16"}:
        return torch.bfloat16
    raise InputError(f"unknown precision {precision!r}: use auto, fp32 or bf16")


@dataclass
class TrainedModel:
    """A model ready to predict, with what it was trained with."""

    model: HSCNet
    config: Config
    vocab: Vocabulary
    features: dict  # source, dim, num_clips and the extractor settings (None for released features)
    content: dict  # the whole checkpoint


def load_model(path: str | os.PathLike, device: torch.device | str = "cpu") -> TrainedModel:
    content = load_checkpoint(path)
    config = config_from_dict(content["config"], f"{path} (config)")
    vocab = Vocabulary(content["vocab"])
    word_dim = content["model"]["text_encoder.embedding.weight"].shape[1]
    model = build_model(config, torch.zeros(len(vocab), word_dim))
    model.load_state_dict(content["model"])
    return TrainedModel(model.to(device).eval(), config, vocab, content["features"], content)
