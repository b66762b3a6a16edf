"""What a user asks `bin/extract` for, and the feature spec it makes.

`ExtractSettings` holds configs/extract.yaml's keys and bin/extract's flags, under the same names:
the choices that make a `FeatureSpec`, the files those choices name (weights, a PCA) and how to run
(decoder, device, precision, batch size). Settings derive the spec (`spec()`); a checkpoint's spec
gives back the settings that remake it (`from_spec`), as `bin/ground` needs for a new video.
Each "the backbone's" default is `None` (or an empty layer name); 0 frames per second means every
frame of the video, as in `Backbone`. This module imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hscnet.common.errors import InputError
from hscnet.extract.backbones import backbone
from hscnet.extract.spec import RANDOM_WEIGHTS, FeatureSpec, file_identity
from hscnet.extract.video import DECODERS


@dataclass(frozen=True)
class ExtractSettings:
    backbone: str = FeatureSpec.backbone  # c3d, x3d_m, slowfast_r50, r2plus1d_r50 (extract/backbones.py)
    decoder: str = "pyav"  # pyav, decord (extract/video.py)
    clip_len: int | None = None  # frames per clip; None: the backbone's (the Kinetics backbones take no other)
    stride: int | None = None  # frames between clip starts; None: the clip length
    sample_fps: float | None = None  # frames sampled per second; 0: every frame; None: the backbone's
    layer: str = ""  # C3D's fc6, fc7 or pool5; empty: the backbone's (fc6; the Kinetics ones' pooled features)
    dtype: str = FeatureSpec.dtype
    weights: str = ""  # c3d.pickle, or a Kinetics backbone's .pyth; empty: random weights, announced loudly
    pca: str = ""  # the official ActivityNet PCA file (fc7 to 500-d, as the released features)
    pca_dims: int = 500
    batch_size: int = 8  # clips per forward; for C3D 16 is as fast on CPU but peaks 0.4 GiB higher
    precision: str = "auto"  # auto, fp32, bf16, fp16 (CUDA): extract/precision.py
    device: str = "auto"
    object_store_mb: int = 1024  # Ray's object store when bin/extract starts Ray itself

    @classmethod
    def from_spec(cls, spec: FeatureSpec, *, weights: str = "", pca: str = "", device: str = "auto") -> ExtractSettings:
        """The settings whose `spec()` is `spec`, given the files it names (their identities are checked
        by `spec()`'s caller, which knows where the spec came from)."""
        return cls(
            backbone=spec.backbone,
            clip_len=spec.clip_len,
            stride=spec.stride,
            sample_fps=spec.sample_fps,
            layer=spec.layer,
            dtype=spec.dtype,
            weights=weights,
            pca=pca,
            pca_dims=spec.dim if pca else cls.pca_dims,
            device=device,
        )

    def check_files(self) -> None:
        """Missing weights or PCA files, and settings the backbone cannot take, fail before any video is read."""
        declared = backbone(self.backbone)
        if self.decoder not in DECODERS:
            raise InputError(f"unknown decoder {self.decoder!r}: use one of {', '.join(DECODERS)}")
        if self.weights and not Path(self.weights).is_file():
            raise InputError(f"{self.weights}: {self.backbone} weights not found")
        if self.pca and not Path(self.pca).is_file():
            raise InputError(f"{self.pca}: PCA file not found")
        for name in ("clip_len", "stride"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise InputError(f"{name} must be a positive number of frames (or null for the backbone's)")
        if self.sample_fps is not None and self.sample_fps < 0:
            raise InputError("sample_fps must be 0 (every frame), a positive rate, or null for the backbone's")
        declared.layer_dim(self.layer or declared.layer)
        if declared.name == "c3d":
            return
        if self.clip_len is not None and self.clip_len != declared.clip_len:
            raise InputError(f"{self.backbone} takes clips of {declared.clip_len} frames, not {self.clip_len}")
        if self.pca:
            raise InputError(f"--pca projects C3D features only (the ActivityNet recipe), not {self.backbone}'s")

    def spec(self) -> FeatureSpec:
        """The spec of the features these settings make (the files' identities read once per process)."""
        self.check_files()
        declared = backbone(self.backbone)
        layer = self.layer or declared.layer
        clip_len = self.clip_len if self.clip_len is not None else declared.clip_len
        return FeatureSpec(
            backbone=declared.name,
            clip_len=clip_len,
            stride=self.stride if self.stride is not None else clip_len,
            sample_fps=self.sample_fps if self.sample_fps is not None else declared.sample_fps,
            layer=layer,
            weights=file_identity(self.weights) if self.weights else RANDOM_WEIGHTS,
            pca=f"{file_identity(self.pca)} to {self.pca_dims}" if self.pca else "",
            dim=self.pca_dims if self.pca else declared.layer_dim(layer),
            dtype=self.dtype,
        )
