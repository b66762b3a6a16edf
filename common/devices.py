"""Device choice, shared by extraction, training, evaluation and grounding."""

from __future__ import annotations

import torch

from hscnet.common.errors import InputError


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
    """The autocast type of HSCNet's training and inference: none (float32) by default on CPU and
    CUDA alike. At the paper's batch sizes a GPU step is bound by launching its ~3000 kernels, so
    bf16 autocast, which adds casts, was no faster there; at four times the batch it was about twice
    as fast (docs/benchmarks.md), so it stays one override away (`train.precision=bf16`)."""
    if precision in {"auto", "fp32", "float32"}:
        return None
    if precision in {"bf16", "bfloat16"}:
        return torch.bfloat16
    raise InputError(f"unknown precision {precision!r}: use auto, fp32 or bf16")
