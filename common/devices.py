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
    """The autocast type of HSCNet's training and inference: none (float32) by default on CPU and
    CUDA alike. On an H200 at the paper's batch sizes a bf16 autocast step was no faster than
    float32 (benchmarks/model_step.py, ActivityNet B 32: 67-79 against 61-80 ms; TACoS B 16: 107-124
    against 78-92 ms): the step is bound by launching its ~3000 kernels, not by the GPU's
    arithmetic, and autocast adds its casts. At four times the batch it was 1.8-2.0 times as fast
    (`--batch-scale 4`), so it stays one override away (`train.precision=bf16`)."""
    if precision in {"auto", "fp32", "float32"}:
        return None
    if precision in {"bf16", "bfloat16"}:
        return torch.bfloat16
    raise InputError(f"unknown precision {precision!r}: use auto, fp32 or bf16")
