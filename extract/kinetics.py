"""The Kinetics-400 backbones (X3D-M, SlowFast R50, R(2+1)D R50), built by pytorchvideo's model builders.

They follow their model-zoo recipes (X3D-M 16x5, SlowFast 8x8, R(2+1)D 16x4 at 30 fps, mean 0.45
and std 0.225 per channel), with the 224-pixel crop their builders are made for. pytorchvideo's
transforms and hub downloads are not used (the transforms do not import with this torch; nothing
may be downloaded). Frames are scaled and centre-cropped by the decoder (`extract/video.py`), for
every backbone alike, because a chunk of full 720p frames would take 1.4 GB where cropped ones take
77 MB; they are normalised here with `torchvision.transforms.v2`. Weights are the user's Kinetics-400
`.pyth` files of the model zoo, read with `weights_only=True` and their keys checked; without them a
seeded random network runs, loudly, as a random C3D does.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from hscnet.common.devices import resolve_device
from hscnet.common.errors import InputError
from hscnet.common.memory import keep_freed_memory
from hscnet.common.torch_files import load_weights_only
from hscnet.extract.backbones import backbone, warn_random_weights
from hscnet.extract.precision import choose_precision

SLOWFAST_ALPHA = 4  # the slow pathway sees every 4th frame of the fast one's 32
KINETICS_BACKBONES = ("x3d_m", "slowfast_r50", "r2plus1d_r50")


def build_kinetics_model(name: str) -> torch.nn.Module:
    """The pytorchvideo network of a Kinetics backbone, with its 400-way classifier (so the zoo's
    checkpoints load with every key), as its model zoo builds it."""
    with warnings.catch_warnings():  # pytorchvideo 0.1.5 scripts a helper with the deprecated torch.jit.script
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.script.*")
        if name == "x3d_m":
            from pytorchvideo.models.x3d import create_x3d

            return create_x3d(input_clip_length=16, input_crop_size=224, model_num_class=400)
        if name == "slowfast_r50":
            from pytorchvideo.models.slowfast import create_slowfast

            return create_slowfast(model_depth=50, slowfast_fusion_conv_kernel_size=(7, 1, 1), model_num_class=400)
        if name == "r2plus1d_r50":
            from pytorchvideo.models.r2plus1d import create_r2plus1d

            return create_r2plus1d(dropout_rate=0.5, model_num_class=400)
    raise InputError(f"unknown Kinetics backbone {name!r}: use one of {', '.join(KINETICS_BACKBONES)}")


def load_kinetics_weights(model: torch.nn.Module, name: str, path: str | os.PathLike) -> None:
    """A model-zoo `.pyth` (a dict with "model_state", or the state dict itself), read without running
    pickled code; every key must match the network."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {name} weights not found")
    checkpoint = load_weights_only(path, f"{name} checkpoint")
    state = checkpoint.get("model_state", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise InputError(f"{path}: not a {name} checkpoint (no state dict of tensors inside)")
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong:
        problems = [f"{len(missing)} missing (e.g. {missing[0]})"] if missing else []
        problems += [f"{len(unexpected)} unexpected (e.g. {unexpected[0]})"] if unexpected else []
        problems += [f"{len(wrong)} of another shape (e.g. {wrong[0]})"] if wrong else []
        raise InputError(f"{path}: not the {name} of pytorchvideo's model zoo: keys {'; '.join(problems)}")
    model.load_state_dict(state)


class KineticsEncoder:
    """A pytorchvideo backbone as a clip encoder: uint8 clips in, pooled features out.

    The same interface as `hscnet.extract.c3d.C3DEncoder` (`encode`, `describe`, `batch_size`, `precision`),
    and the same precision rule (`extract/precision.py`), applied through autocast."""

    def __init__(self, *, name: str, weights: str | None, device: str, precision: str, batch_size: int, seed: int = 0):
        self.spec = backbone(name)
        self.name, self.batch_size = name, batch_size
        self.device = resolve_device(device)
        if self.device.type == "cpu":
            keep_freed_memory()  # each batch's activations would otherwise be mapped and zero-filled afresh
        self.precision = choose_precision(precision, self.device.type)
        torch.manual_seed(seed)
        model = build_kinetics_model(name)
        if weights:
            load_kinetics_weights(model, name, weights)
        else:
            warn_random_weights(name, seed)
        model.blocks[-1].proj = torch.nn.Identity()  # the pooled features, not Kinetics' 400 classes
        model.blocks[-1].activation = None
        self.model = model.eval().to(self.device)
        from torchvision.transforms import v2

        self.normalize = v2.Normalize(mean=list(self.spec.mean), std=list(self.spec.std))

    def describe(self) -> str:
        return f"{self.name} on {self.device.type} ({self.precision}), features {self.spec.dim}-d"

    def _inputs(self, clips: np.ndarray) -> torch.Tensor | list[torch.Tensor]:
        """uint8 [n, T, H, W, 3] -> the model's input: [n, 3, T, H, W], or SlowFast's [slow, fast] pair."""
        x = torch.as_tensor(clips).to(self.device)  # an array, or NVDEC's tensor on the GPU already
        x = self.normalize(x.permute(0, 1, 4, 2, 3).float().div_(255.0))  # [n, T, 3, H, W], channels at -3
        x = x.permute(0, 2, 1, 3, 4)  # [n, 3, T, H, W]
        if self.name != "slowfast_r50":
            return x
        frames = x.shape[2]
        slow = torch.linspace(0, frames - 1, frames // SLOWFAST_ALPHA, device=self.device).long()
        return [x.index_select(2, slow), x]  # slow [n, 3, T/4, H, W], fast [n, 3, T, H, W]

    def encode(self, clips: np.ndarray) -> np.ndarray:
        """uint8 clips [n, clip_len, crop, crop, 3] RGB -> float32 features [n, dim]."""
        dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]
        out = []
        with torch.inference_mode():
            for start in range(0, len(clips), self.batch_size):
                inputs = self._inputs(clips[start : start + self.batch_size])
                with torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                    out.append(self.model(inputs).float().cpu().numpy())  # [b, dim]
        return np.concatenate(out) if out else np.zeros((0, self.spec.dim), np.float32)
