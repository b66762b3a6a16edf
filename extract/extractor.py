"""One video to its features: the settings of an extraction and the plain function that runs it.

`ExtractSettings` is what a user asks `bin/extract` for (configs/extract.yaml and the flags, under
the same names): the choices that make a `FeatureSpec`, the files those choices name (C3D
weights, a PCA) and how to run (device, precision, batch size). Its spec defaults are the
spec's own. `extract_video` decodes one video and encodes its clips; the Ray stage of
`pipeline/extraction.py`, `bin/ground` and the tests all call it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from common.errors import InputError, first_line
from extract.backbones import C3D_LAYERS, KineticsEncoder, backbone
from extract.spec import RANDOM_WEIGHTS, FeatureSpec, file_identity
from extract.store import ManifestRecord
from extract.video import DECODERS, VideoInfo, decode_clips, probe

if TYPE_CHECKING:
    from extract.c3d import ClipEncoder


@dataclass(frozen=True)
class ExtractSettings:
    backbone: str = FeatureSpec.backbone  # c3d, x3d_m, slowfast_r50, r2plus1d_r50 (extract/backbones.py)
    decoder: str = "pyav"  # pyav, decord (extract/video.py)
    clip_len: int = 0  # frames per clip; 0: the backbone's (the Kinetics backbones take no other)
    stride: int = 0  # frames between clip starts; 0: the clip length
    sample_fps: float = 0.0  # frames sampled per second; 0: the backbone's (C3D: every frame of the video)
    layer: str = ""  # C3D's fc6, fc7 or pool5; empty: the backbone's (fc6; the Kinetics ones' pooled features)
    dtype: str = FeatureSpec.dtype
    weights: str = ""  # c3d.pickle, or a Kinetics backbone's .pyth; empty: random weights, announced loudly
    pca: str = ""  # the official ActivityNet PCA file (fc7 to 500-d, as the released features)
    pca_dims: int = 500
    batch_size: int = 8  # clips per forward; for C3D 16 is as fast on CPU but peaks 0.4 GiB higher
    precision: str = "auto"  # auto, fp32, bf16 (CPU), fp16 (CUDA)
    device: str = "auto"
    object_store_mb: int = 1024  # Ray's object store when bin/extract starts Ray itself

    def check_files(self) -> None:
        """Missing weights or PCA files, and settings the backbone cannot take, fail before any video is read."""
        declared = backbone(self.backbone)
        if self.decoder not in DECODERS:
            raise InputError(f"unknown decoder {self.decoder!r}: use one of {', '.join(DECODERS)}")
        if self.weights and not Path(self.weights).is_file():
            raise InputError(f"{self.weights}: {self.backbone} weights not found")
        if self.pca and not Path(self.pca).is_file():
            raise InputError(f"{self.pca}: PCA file not found")
        if declared.name == "c3d":
            if self.layer and self.layer not in C3D_LAYERS:
                raise InputError(f"unknown C3D layer {self.layer!r}: use one of {', '.join(C3D_LAYERS)}")
            return
        if self.clip_len and self.clip_len != declared.clip_len:
            raise InputError(f"{self.backbone} takes clips of {declared.clip_len} frames, not {self.clip_len}")
        if self.layer and self.layer != declared.layer:
            raise InputError(f"{self.backbone} gives its pooled features (layer {declared.layer}), not {self.layer!r}")
        if self.pca:
            raise InputError(f"--pca projects C3D features only (the ActivityNet recipe), not {self.backbone}'s")

    def spec(self) -> FeatureSpec:
        """The spec of the features these settings make (the files' identities read once per process)."""
        self.check_files()
        declared = backbone(self.backbone)
        layer = self.layer or declared.layer
        clip_len = self.clip_len or declared.clip_len
        return FeatureSpec(
            backbone=declared.name,
            clip_len=clip_len,
            stride=self.stride or clip_len,
            sample_fps=self.sample_fps or declared.sample_fps,
            layer=layer,
            weights=file_identity(self.weights) if self.weights else RANDOM_WEIGHTS,
            pca=f"{file_identity(self.pca)} to {self.pca_dims}" if self.pca else "",
            dim=self.pca_dims if self.pca else C3D_LAYERS[layer] if declared.name == "c3d" else declared.dim,
            dtype=self.dtype,
        )

    def encoder(self, layout: str = "auto") -> ClipEncoder | KineticsEncoder:
        """The backbone these settings run; `layout` overrides C3D's memory layout (benchmarks compare them)."""
        from extract.c3d import ClipEncoder  # torch, imported where a network runs: bin/extract's driver only plans
        if self.backbone != "c3d":
            return KineticsEncoder(
                name=self.backbone,
                weights=self.weights or None,
                device=self.device,
                precision=self.precision,
                batch_size=self.batch_size,
            )
        return ClipEncoder(
            weights=self.weights or None,
            layer=self.layer or FeatureSpec.layer,
            device=self.device,
            precision=self.precision,
            batch_size=self.batch_size,
            pca=self.pca or None,
            pca_dims=self.pca_dims,
            layout=layout,
        )


def extract_video(
    path: str | os.PathLike,
    video_id: str,
    encode: Callable[[np.ndarray], np.ndarray],
    spec: FeatureSpec,
    decode: Callable[[VideoInfo], Iterable[np.ndarray]] | None = None,
    decoder: str = "pyav",
) -> tuple[np.ndarray | None, ManifestRecord]:
    """One video to its features [clips, spec.dim] and manifest record; a failure becomes a "failed" record.

    `encode` maps uint8 clips to features; `decode(info)` gives the clips a chunk at a time
    (a Ray decode task's stream), once the video has been probed; by default they are decoded here.
    """
    started = time.time()
    record = ManifestRecord(
        video_id=video_id, source=str(Path(path).resolve()), status="failed", spec=spec, decoder=decoder
    )
    try:
        info = probe(path, decoder)
        record.fps, record.num_frames, record.duration = info.fps, info.num_frames, info.duration
        chunks = decode(info) if decode is not None else decode_clips(path, spec, info, decoder=decoder)
        # Each chunk's features are cast at once: they are all that grows with the video's length.
        features = np.concatenate([encode(chunk).astype(spec.dtype) for chunk in chunks])
        if not np.isfinite(features).all():
            raise ValueError(f"{spec.backbone} produced non-finite features (NaN or Inf)")
        if features.shape[1] != spec.dim:
            raise ValueError(f"the encoder gives {features.shape[1]}-d features, the spec says {spec.dim}")
    except Exception as error:  # one bad video must not stop the others: recorded and reported at the end
        record.error = first_line(error, 500)
        record.seconds = round(time.time() - started, 2)
        return None, record
    record.status, record.clips = "ok", len(features)
    record.seconds = round(time.time() - started, 2)
    return features, record
