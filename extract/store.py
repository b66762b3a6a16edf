"""The feature store: one `<video_id>.npy` ([T, D], one row per clip) per video and a manifest.

`manifest.jsonl` has one line per extraction attempt; the last line of a video is its state.
Feature files are written atomically (temporary name, then rename), so a file that exists is
complete; the manifest line is appended after the rename, so an interrupted run loses at most
the videos that were in flight.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from extract import atomic
from extract.errors import InputError

MANIFEST = "manifest.jsonl"
# The fields that must match for a stored feature file to be reused by a later run.
SETTING_FIELDS = ("clip_len", "stride", "target_fps", "backbone", "layer", "dim", "weights", "pca", "dtype")


def video_id_for(path: str | os.PathLike) -> str:
    """The file stem, with every character that is unsafe in a file name replaced by "_"."""
    stem = Path(path).stem
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", stem).lstrip(".")
    return safe or "video"


@dataclass
class ManifestRecord:
    """One line of manifest.jsonl (DESIGN.md, data contracts)."""

    video_id: str
    source: str
    status: str  # "ok" or "failed"
    error: str = ""
    fps: float = 0.0
    num_frames: int = 0
    duration: float = 0.0
    clips: int = 0
    clip_len: int = 16
    stride: int = 16
    target_fps: float = 0.0  # 0: clips at the video's own frame rate
    backbone: str = "c3d"
    layer: str = "fc6"
    dim: int = 0
    weights: str = "random"  # "random" or "<file name> sha256:<hex>"
    pca: str = ""  # "" or "<file name> sha256:<hex> to <k>", the projection applied to the features
    dtype: str = "float16"
    seconds: float = 0.0  # wall time of this video's extraction

    def settings(self) -> dict:
        return {name: getattr(self, name) for name in SETTING_FIELDS}

    @classmethod
    def from_json(cls, obj: dict) -> ManifestRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in obj.items() if key in known})


class FeatureStore:
    """A folder of per-video feature arrays with their manifest."""

    def __init__(self, path: str | os.PathLike, create: bool = False):
        self.path = Path(path)
        if create:
            self.path.mkdir(parents=True, exist_ok=True)
        elif not self.path.is_dir():
            raise InputError(f"{self.path}: feature store folder not found")
        self._ids = {
            entry.name[:-4]
            for entry in os.scandir(self.path)
            if entry.name.endswith(".npy") and not entry.name.startswith(".")
        }

    def __contains__(self, video: str) -> bool:
        return video in self._ids

    def ids(self) -> set[str]:
        return set(self._ids)

    def where(self, video: str) -> str:
        return str(self.path / f"{video}.npy")

    def read(self, video: str) -> np.ndarray:
        """The [T, D] clips of a video, memory-mapped: nothing is read before it is used."""
        try:
            return np.load(self.path / f"{video}.npy", mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as error:
            raise InputError(f"{self.where(video)}: unreadable feature file ({error})") from error

    def write(self, video: str, features: np.ndarray) -> None:
        atomic.save_npy(self.path / f"{video}.npy", features)
        self._ids.add(video)

    def append(self, record: ManifestRecord) -> None:
        with open(self.path / MANIFEST, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(asdict(record)) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def records(self) -> dict[str, ManifestRecord]:
        """The latest manifest record of every video (a torn last line from a crash is ignored)."""
        manifest = self.path / MANIFEST
        latest: dict[str, ManifestRecord] = {}
        if not manifest.is_file():
            return latest
        lines = manifest.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = ManifestRecord.from_json(json.loads(line))
            except (json.JSONDecodeError, TypeError) as error:
                if number == len(lines):
                    break
                raise InputError(f"{manifest}:{number}: corrupt manifest line ({error})") from error
            latest[record.video_id] = record
        return latest

    @property
    def settings(self) -> dict | None:
        """The extraction settings shared by every stored video, or None if unknown or mixed."""
        found = {json.dumps(r.settings(), sort_keys=True) for r in self.records().values() if r.status == "ok"}
        return json.loads(found.pop()) if len(found) == 1 else None
