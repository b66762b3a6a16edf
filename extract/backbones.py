"""The video backbones a feature store can be made with: what each one reads, and the model itself.

C3D (Sports-1M) gives the paper's features and is this project's default (`extract/c3d.py`).
Three Kinetics-400 models, built by pytorchvideo's model builders, give features of more recent
networks, as the moment-retrieval tools extract SlowFast features for users' own videos:

| backbone      | clip                 | frames                      | feature (pooled, before the classifier) |
|---------------|----------------------|-----------------------------|-----------------------------------------|
| c3d           | 16 frames, every one | 171x128, centre crop 112    | fc6 4096 (fc7 4096, pool5 8192)         |
| x3d_m         | 16 frames at 6 fps   | short side 256, crop 224    | 2048                                    |
| slowfast_r50  | 32 frames at 15 fps  | short side 256, crop 224    | 2304 (slow 2048 + fast 256)             |
| r2plus1d_r50  | 16 frames at 7.5 fps | short side 256, crop 224    | 2048                                    |

The three follow their model-zoo recipes (X3D-M 16x5, SlowFast 8x8, R(2+1)D 16x4 at 30 fps,
mean 0.45 and std 0.225 per channel), with the 224-pixel crop their builders are made for.
pytorchvideo's transforms and hub downloads are not used (the transforms do not import with
this torch; nothing may be downloaded). Frames are scaled and centre-cropped by the decoder
(`extract/video.py`), for every backbone alike, because a chunk of full 720p frames would take
1.4 GB where cropped ones take 77 MB; they are normalised here with `torchvision.transforms.v2`. Weights are the
user's Kinetics-400 `.pyth` files of the model zoo, read with `weights_only=True` and their keys
checked; without them a seeded random network runs, loudly, as a random C3D does.

This module declares the backbones without importing torch: decoding needs only the frame sizes, and
bin/extract's own process (which plans and writes while Ray's workers run the networks) only these
declarations, C3D's layers and the warning that a network is random.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.errors import InputError, first_line

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backbone:
    """What a backbone reads and gives. Frames are either resized to `resize` (height, width) or scaled so
    their short side is `short_side`, then centre-cropped to `crop` x `crop`."""

    name: str
    clip_len: int  # frames a clip holds
    sample_fps: float  # frames sampled per second; 0: every frame of the video
    layer: str  # the layer whose output is the feature
    dim: int  # the feature's size at that layer
    crop: int
    resize: tuple[int, int] | None = None
    short_side: int = 0
    mean: tuple[float, float, float] = (0.45, 0.45, 0.45)  # of RGB in [0, 1] (C3D subtracts its own mean)
    std: tuple[float, float, float] = (0.225, 0.225, 0.225)

    def frame_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) a video's frames are scaled to before the centre crop."""
        if self.resize is not None:
            return self.resize[1], self.resize[0]
        if width <= height:
            return self.short_side, max(self.crop, round(height * self.short_side / width))
        return max(self.crop, round(width * self.short_side / height)), self.short_side


C3D_LAYERS = {"pool5": 8192, "fc6": 4096, "fc7": 4096}  # C3D's feature layers (after their ReLU) and sizes
C3D_BACKBONE = Backbone("c3d", clip_len=16, sample_fps=0.0, layer="fc6", dim=4096, crop=112, resize=(128, 171))
BACKBONES = {
    "c3d": C3D_BACKBONE,
    "x3d_m": Backbone("x3d_m", clip_len=16, sample_fps=6.0, layer="pool", dim=2048, crop=224, short_side=256),
    "slowfast_r50": Backbone("slowfast_r50", clip_len=32, sample_fps=15.0, layer="pool", dim=2304, crop=224,
                             short_side=256),
    "r2plus1d_r50": Backbone("r2plus1d_r50", clip_len=16, sample_fps=7.5, layer="pool", dim=2048, crop=224,
                             short_side=256),
}  # fmt: skip
SLOWFAST_ALPHA = 4  # the slow pathway sees every 4th frame of the fast one's 32


def backbone(name: str) -> Backbone:
    if name not in BACKBONES:
        raise InputError(f"unknown backbone {name!r}: use one of {', '.join(BACKBONES)}")
    return BACKBONES[name]


_warned_random = threading.Event()


def warn_random_c3d(seed: int = 0) -> None:
    """Say loudly, once per process, that the features come from an untrained C3D."""
    if not _warned_random.is_set():
        _warned_random.set()
        log.warning(
            "WARNING: no C3D weights given (--weights c3d.pickle): using a RANDOM C3D (seed %d). Its features "
            "separate colour and motion but are not the paper's Sports-1M features; they are recorded as "
            'weights "random" in the manifest.',
            seed,
        )


def build_kinetics_model(name: str):
    """The pytorchvideo network of a Kinetics backbone, with its 400-way classifier (so the zoo's
    checkpoints load with every key), as its model zoo builds it."""
    with warnings.catch_warnings():  # pytorchvideo 0.1.5 scripts a helper with the deprecated torch.jit.script
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.script.*")
        return _build(name)


def _build(name: str):
    if name == "x3d_m":
        from pytorchvideo.models.x3d import create_x3d

        return create_x3d(input_clip_length=16, input_crop_size=224, model_num_class=400)
    if name == "slowfast_r50":
        from pytorchvideo.models.slowfast import create_slowfast

        return create_slowfast(model_depth=50, slowfast_fusion_conv_kernel_size=(7, 1, 1), model_num_class=400)
    if name == "r2plus1d_r50":
        from pytorchvideo.models.r2plus1d import create_r2plus1d

        return create_r2plus1d(dropout_rate=0.5, model_num_class=400)
    raise InputError(f"unknown Kinetics backbone {name!r}: use one of x3d_m, slowfast_r50, r2plus1d_r50")


def load_kinetics_weights(model, name: str, path: str | os.PathLike) -> None:
    """A model-zoo `.pyth` (a dict with "model_state", or the state dict itself), read without running
    pickled code; every key must match the network."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {name} weights not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated file or one that needs pickled code: refused in one line
        raise InputError(f"{path}: not a loadable {name} checkpoint ({first_line(error, 200)})") from error
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

    Same interface as `extract.c3d.ClipEncoder`, and the same rule under "auto": bf16 autocast on a CPU
    with native bf16 (measured within 0.4 % of float32 for all three, 1.3 to 2 times faster), float32 on
    other CPUs, fp16 autocast on CUDA."""

    def __init__(self, *, name: str, weights: str | None, device: str, precision: str, batch_size: int, seed: int = 0):
        import torch

        from common.devices import resolve_device
        from common.memory import keep_freed_memory

        self.spec = backbone(name)
        self.name, self.batch_size = name, batch_size
        self.device = resolve_device(device)
        if self.device.type == "cpu":
            keep_freed_memory()  # as for C3D: each batch's activations would be mapped and zero-filled afresh
        torch.manual_seed(seed)
        model = build_kinetics_model(name)
        if weights:
            load_kinetics_weights(model, name, weights)
        else:
            log.warning(
                f"WARNING: no {name} weights given (--weights {name}.pyth): using a RANDOM {name} (seed {seed}); "
                "its features are recorded as weights \"random\" in the manifest"
            )
        model.blocks[-1].proj = torch.nn.Identity()  # the pooled features, not Kinetics' 400 classes
        model.blocks[-1].activation = None
        self.model = model.eval().to(self.device)
        if precision == "auto":
            from extract.c3d import cpu_has_native_bf16

            precision = "fp16" if self.device.type == "cuda" else "bf16" if cpu_has_native_bf16() else "fp32"
        if precision not in {"fp32", "bf16", "fp16"} or (precision == "fp16" and self.device.type != "cuda"):
            raise InputError(f"precision {precision!r} is not available for {name} on {self.device.type}")
        self.precision = precision
        from torchvision.transforms import v2

        self.normalize = v2.Normalize(mean=list(self.spec.mean), std=list(self.spec.std))

    def describe(self) -> str:
        return f"{self.name} on {self.device.type} ({self.precision}), features {self.spec.dim}-d"

    def _inputs(self, clips):
        """uint8 [n, T, H, W, 3] -> the model's input: [n, 3, T, H, W], or SlowFast's [slow, fast] pair."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(clips)).to(self.device)
        x = self.normalize(x.permute(0, 1, 4, 2, 3).float().div_(255.0))  # [n, T, 3, H, W], channels at -3
        x = x.permute(0, 2, 1, 3, 4)  # [n, 3, T, H, W]
        if self.name != "slowfast_r50":
            return x
        frames = x.shape[2]
        slow = torch.linspace(0, frames - 1, frames // SLOWFAST_ALPHA, device=self.device).long()
        return [x.index_select(2, slow), x]  # slow [n, 3, T/4, H, W], fast [n, 3, T, H, W]

    def encode(self, clips: np.ndarray) -> np.ndarray:
        """uint8 clips [n, clip_len, crop, crop, 3] RGB -> float32 features [n, dim]."""
        import torch

        dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]
        out = []
        with torch.inference_mode():
            for start in range(0, len(clips), self.batch_size):
                inputs = self._inputs(clips[start : start + self.batch_size])
                with torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                    out.append(self.model(inputs).float().cpu().numpy())  # [b, dim]
        return np.concatenate(out)
