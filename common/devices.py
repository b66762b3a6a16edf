"""Device choice, shared by extraction, training, evaluation and grounding."""

from __future__ import annotations

import torch

from common.errors import InputError


def resolve_device(name: str) -> torch.device:
    """ "auto" is CUDA where there is a GPU, else the CPU; a CUDA device asked for must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {name!r} asked for, but no CUDA device is available (auto picks one)")
    if name != "cpu" and not name.startswith("cuda"):
        raise InputError(f"unknown device {name!r}: use auto, cpu or cuda")
    return torch.device(name)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast type of HSCNet's training and inference: bf16 on CUDA by default, none (float32) on CPU."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    if precision in {"fp32", "float32"}:
        return None
    if precision in {"bf16", "bfloat16"}:
        return torch.bfloat16
    raise InputError(f"unknown precision {precision!r}: use auto, fp32 or bf16")
