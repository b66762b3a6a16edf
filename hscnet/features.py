"""Feature sources: our feature store or the standard released HDF5 files, and how a video's
clips are prepared for the model (L2-normalised per clip, then resampled to a fixed count by
averaging within bins, as PRVG/DepNet do).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from hscnet.common.errors import InputError
from hscnet.extract.spec import RELEASED_ACTIVITYNET, FeatureSpec
from hscnet.extract.store import FeatureStore, check_features


class HDF5Features:
    """The standard released feature files, opened lazily in each process that reads them.

    `sub_activitynet_v1-3.c3d.hdf5` keeps a video's clips at `f[vid]["c3d_features"]`,
    `tall_c3d_features.hdf5` (TACoS) at `f[vid]`; both layouts are read.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: feature file not found")
        self._handle = None
        self._pid = None
        with self._open() as f:
            self._ids = set(f.keys())

    def _open(self):
        import h5py

        try:
            return h5py.File(self.path, "r")
        except OSError as error:
            raise InputError(f"{self.path}: not a readable HDF5 file ({error})") from error

    def _file(self):
        if self._handle is None or self._pid != os.getpid():  # h5py handles do not survive fork
            self._handle, self._pid = self._open(), os.getpid()
        return self._handle

    def __contains__(self, video: str) -> bool:
        return video in self._ids

    def ids(self) -> set[str]:
        return set(self._ids)

    def where(self, video: str) -> str:
        return f"{self.path}[{video}]"

    def read(self, video: str) -> np.ndarray:
        """The [T, D] clips of a video; a missing key, a group without `c3d_features` or an array that is not
        2-d floats is refused naming the file and the key."""
        try:
            node = self._file()[video]
            if not hasattr(node, "shape"):  # a group: the ActivityNet layout
                node = node["c3d_features"]
            features = node[()]
        except KeyError as error:
            raise InputError(f"{self.where(video)}: no such features in the HDF5 file ({error.args[0]})") from error
        return check_features(features, self.where(video))

    def spec(self) -> FeatureSpec | None:
        """The released ActivityNet features' public recipe (`RELEASED_ACTIVITYNET`), known by their
        layout (`f[vid]["c3d_features"]`, 500-d). TACoS's `tall_c3d_features.hdf5` (TALL: C3D fc6
        pooled over 64-frame windows about 12 frames apart) cannot be remade from this extractor's
        16-frame clips: None, as for any other file."""
        video = next(iter(self._ids), None)
        node = self._file()[video] if video is not None else None
        activitynet_layout = node is not None and not hasattr(node, "shape") and "c3d_features" in node
        if activitynet_layout and node["c3d_features"].shape[-1] == RELEASED_ACTIVITYNET.dim:
            return RELEASED_ACTIVITYNET
        return None

    def __getstate__(self):
        return {**self.__dict__, "_handle": None, "_pid": None}


def open_features(path: str | os.PathLike) -> FeatureStore | HDF5Features:
    """A feature store folder or a released HDF5 file."""
    path = Path(path)
    if path.is_dir():
        return FeatureStore(path)
    if path.suffix in {".hdf5", ".h5"}:
        return HDF5Features(path)
    if not path.exists():
        raise InputError(f"{path}: feature store not found")
    raise InputError(f"{path}: not a feature store folder nor an .hdf5/.h5 feature file")


def l2_normalize(features: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-8)


def resample_clips(features: np.ndarray, num_clips: int) -> np.ndarray:
    """[T, D] clips to [num_clips, D]: mean within equal bins, or interpolation when T < num_clips."""
    features = np.asarray(features, dtype=np.float32)
    total = features.shape[0]
    if total == 0:
        raise ValueError("a video with no clips cannot be resampled")
    if total >= num_clips:
        edges = np.linspace(0, total, num_clips + 1).round().astype(int)
        starts = edges[:-1]
        ends = np.maximum(edges[1:], starts + 1)
        cumulative = np.concatenate(
            [np.zeros((1, features.shape[1]), np.float64), np.cumsum(features, axis=0, dtype=np.float64)]
        )
        return ((cumulative[ends] - cumulative[starts]) / (ends - starts)[:, None]).astype(np.float32)
    positions = np.clip((np.arange(num_clips) + 0.5) * total / num_clips - 0.5, 0, total - 1)
    low = np.floor(positions).astype(int)
    high = np.minimum(low + 1, total - 1)
    weight = (positions - low)[:, None].astype(np.float32)
    return (1 - weight) * features[low] + weight * features[high]


def prepare_video(features: np.ndarray, num_clips: int) -> np.ndarray:
    """Per-clip L2 normalisation, then resampling to the model's clip count (PRVG's order)."""
    return resample_clips(l2_normalize(np.asarray(features, dtype=np.float32)), num_clips)
