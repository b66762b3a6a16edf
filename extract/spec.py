"""The feature spec: one frozen record of how a video's features were made.

Every setting that changes what a feature file holds is here, with its default: the backbone
and its layer, the clip length and stride in frames, the frame rate frames are sampled at, the
identity of the weights and of the PCA projection (a file name and its sha256, so that a file
renamed is still recognised and another file under the same name is not), the feature size
and the stored dtype. A spec is written whole into every manifest line of the feature store
and into every checkpoint, read back whole, and compared whole: `bin/extract` refuses to add
features of another spec to a store, and `bin/ground` extracts a new video with the spec its
checkpoint was trained on.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import typing
from dataclasses import asdict, dataclass
from pathlib import Path

from hscnet.common.errors import InputError
from hscnet.extract.backbones import C3D_BACKBONE

RANDOM_WEIGHTS = "random"


@functools.cache
def _identity(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"{Path(path).name} sha256:{digest.hexdigest()}"


def file_identity(path: str | os.PathLike) -> str:
    """ "<file name> sha256:<hex>", computed once per file version in a process."""
    stat = Path(path).stat()
    return _identity(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@dataclass(frozen=True)
class FeatureSpec:
    """Its defaults are C3D's (`extract/backbones.py`): the paper's features."""

    backbone: str = C3D_BACKBONE.name  # the frame size, crop and normalisation follow from it
    clip_len: int = C3D_BACKBONE.clip_len  # frames per clip
    stride: int = C3D_BACKBONE.clip_len  # frames between clip starts (8 gives ActivityNet-style overlapping clips)
    sample_fps: float = C3D_BACKBONE.sample_fps  # frames sampled per second; 0 keeps every frame of the video
    layer: str = C3D_BACKBONE.layer
    weights: str = RANDOM_WEIGHTS  # "random", or "<file name> sha256:<hex>"
    pca: str = ""  # "", or "<file name> sha256:<hex> to <k>"
    dim: int = C3D_BACKBONE.dim
    dtype: str = "float16"  # what the feature files hold

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj, where: str) -> FeatureSpec:
        """A spec read back from a manifest line or a checkpoint; `where` names it in errors."""
        if not isinstance(obj, dict):
            raise InputError(f"{where}: the feature spec is not a mapping ({obj!r:.80})")
        hints = typing.get_type_hints(cls)
        names = [field.name for field in dataclasses.fields(cls)]
        if sorted(obj) != sorted(names):
            given = ", ".join(repr(key) for key in obj)[:200]  # keys from a file: repr keeps the message on one line
            raise InputError(f"{where}: a feature spec has the keys {', '.join(names)}, this one {given}")
        for name in names:
            value, kind = obj[name], hints[name]
            numeric = kind is float and isinstance(value, int)
            if isinstance(value, bool) or not (isinstance(value, kind) or numeric):
                raise InputError(f"{where}: feature spec {name} must be {kind.__name__}, got {value!r:.80}")
        return cls(**{name: hints[name](obj[name]) for name in names})

    def differences(self, other: FeatureSpec) -> list[str]:
        """What changed from `self` to `other`, as "stride 16 -> 8"."""
        return [
            f"{field.name} {getattr(self, field.name)} -> {getattr(other, field.name)}"
            for field in dataclasses.fields(self)
            if getattr(self, field.name) != getattr(other, field.name)
        ]

    def describe(self) -> str:
        if self.backbone == "imported":  # extract/imported.py: rows of features made elsewhere
            rows = f"a row every {1 / self.sample_fps:g} s" if self.sample_fps else "rows spread over each video"
            return f"imported {self.layer} ({self.dim}-d), {rows}"
        frames = f"{self.clip_len}-frame clips every {self.stride} frames"
        if self.sample_fps:
            frames += f" at {self.sample_fps:g} fps"
        projected = f", PCA {self.pca}" if self.pca else ""
        return f"{self.backbone} {self.layer} ({self.dim}-d{projected}) of {frames}, weights {self.weights}"


# The recipe of the released ActivityNet features (sub_activitynet_v1-3.c3d.hdf5), which is
# public: Sports-1M C3D fc7 of 16-frame clips every 8 frames, projected to 500-d with the
# official PCA_activitynet_v1-3.hdf5. The files' hashes are not published, so the weights and
# the PCA are named by what they are, and bin/ground checks the files a user gives by content.
RELEASED_C3D_WEIGHTS = "released: Sports-1M C3D (c3d.pickle)"
RELEASED_ACTIVITYNET_PCA = "released: PCA_activitynet_v1-3.hdf5 to 500"
RELEASED_ACTIVITYNET = FeatureSpec(
    backbone="c3d",
    clip_len=16,
    stride=8,
    sample_fps=0.0,
    layer="fc7",
    weights=RELEASED_C3D_WEIGHTS,
    pca=RELEASED_ACTIVITYNET_PCA,
    dim=500,
    dtype="float32",
)
