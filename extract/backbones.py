"""The video backbones a feature store can be made with: what each one reads and gives.

C3D (Sports-1M) gives the paper's features and is the default (`extract/c3d.py`). Three
Kinetics-400 models, built by pytorchvideo's model builders (`extract/kinetics.py`), give features
of more recent networks, as the moment-retrieval tools extract SlowFast features for users' own videos:

| backbone      | clip                 | frames                      | feature (pooled, before the classifier) |
|---------------|----------------------|-----------------------------|-----------------------------------------|
| c3d           | 16 frames, every one | 171x128, centre crop 112    | fc6 4096 (fc7 4096, pool5 8192)         |
| x3d_m         | 16 frames at 6 fps   | short side 256, crop 224    | 2048                                    |
| slowfast_r50  | 32 frames at 15 fps  | short side 256, crop 224    | 2304 (slow 2048 + fast 256)             |
| r2plus1d_r50  | 16 frames at 7.5 fps | short side 256, crop 224    | 2048                                    |

This module imports no torch: decoding needs only the frame sizes, and bin/extract's own process
(which plans and writes while Ray's workers run the networks) only these declarations.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from hscnet.common.errors import InputError

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

    def layer_dim(self, layer: str) -> int:
        """The feature size at `layer` (C3D has three feature layers, the others one)."""
        if self.name == "c3d":
            if layer not in C3D_LAYERS:
                raise InputError(f"unknown C3D layer {layer!r}: use one of {', '.join(C3D_LAYERS)}")
            return C3D_LAYERS[layer]
        if layer != self.layer:
            raise InputError(f"{self.name} gives its pooled features (layer {self.layer}), not {layer!r}")
        return self.dim


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


def backbone(name: str) -> Backbone:
    if name not in BACKBONES:
        raise InputError(f"unknown backbone {name!r}: use one of {', '.join(BACKBONES)}")
    return BACKBONES[name]


_warned_random: set[str] = set()
_warning_lock = threading.Lock()


def warn_random_weights(name: str, seed: int = 0) -> None:
    """Say loudly, once per process and network, that the features come from an untrained network."""
    with _warning_lock:
        if name in _warned_random:
            return
        _warned_random.add(name)
    file = "c3d.pickle" if name == "c3d" else f"{name}.pyth"
    log.warning(
        f"WARNING: no {name} weights given (--weights {file}): using a RANDOM {name} (seed {seed}). Its features "
        'separate colour and motion but carry no trained semantics; they are recorded as weights "random" '
        "in the manifest."
    )
