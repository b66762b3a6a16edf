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
import typing
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from hscnet.common import atomic
from hscnet.common.errors import InputError
from hscnet.extract.spec import FeatureSpec

MANIFEST = "manifest.jsonl"
# The fields of a manifest line written before the spec was nested (hscnet 0.1): read back into a spec.
_FLAT_SPEC = {"clip_len": "clip_len", "stride": "stride", "target_fps": "sample_fps", "backbone": "backbone",
              "layer": "layer", "weights": "weights", "pca": "pca", "dim": "dim", "dtype": "dtype"}  # fmt: skip


def check_features(features: np.ndarray, where: str) -> np.ndarray:
    """A feature array as stored: [clips, dim] of floats, else a one-line refusal naming where it came from."""
    if features.ndim != 2 or not np.issubdtype(features.dtype, np.floating):
        raise InputError(
            f"{where}: features of shape {tuple(features.shape)} and dtype {features.dtype}, "
            "expected [clips, dim] floats"
        )
    return features


def video_id_for(path: str | os.PathLike) -> str:
    """The file stem, with every character that is unsafe in a file name replaced by "_"."""
    stem = Path(path).stem
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", stem).lstrip(".")
    return safe or "video"


@dataclass
class ManifestRecord:
    """One line of manifest.jsonl: one extraction attempt of one video, with the spec it was made with."""

    video_id: str
    source: str
    status: str  # "ok" or "failed"
    spec: FeatureSpec
    error: str = ""
    decoder: str = "pyav"  # which library read the frames (extract/video.py)
    node: str = ""  # where it ran: host name (and Ray node id on a cluster)
    fps: float = 0.0  # the video's own frame rate
    num_frames: int = 0
    duration: float = 0.0
    clips: int = 0
    seconds: float = 0.0  # wall time of this video's extraction
    start: float = 0.0  # the first frame's time in the file (a player's clock there), seconds
    warning: str = ""  # what was odd about a video that was extracted (a file cut short)

    def to_json(self) -> dict:
        return {**asdict(self), "spec": self.spec.to_json()}

    @classmethod
    def from_json(cls, obj: dict, where: str) -> ManifestRecord:
        if not isinstance(obj, dict):
            raise TypeError(f"a manifest line is a JSON object, not {type(obj).__name__}")
        if "spec" in obj:
            spec = FeatureSpec.from_json(obj["spec"], where)
        else:  # the flat layout of hscnet 0.1
            spec = FeatureSpec.from_json(
                {new: obj.get(old, getattr(FeatureSpec, new)) for old, new in _FLAT_SPEC.items()}, where
            )
        kinds = typing.get_type_hints(cls)
        values = {}
        for field in fields(cls):
            if field.name == "spec" or field.name not in obj:
                continue
            value, kind = obj[field.name], kinds[field.name]
            numeric = kind is float and isinstance(value, int)
            if isinstance(value, bool) or not (isinstance(value, kind) or numeric):
                raise TypeError(f"{field.name} must be {kind.__name__}, got {value!r:.60}")
            values[field.name] = kind(value)
        if values.get("status") not in ("ok", "failed"):
            raise TypeError(f'status must be "ok" or "failed", got {values.get("status")!r:.60}')
        return cls(spec=spec, **values)


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

    def file(self, video: str) -> Path:
        """The feature file of a video id; an id that would name a file outside the store (a path separator,
        a leading dot, a control character: ids come from annotation files) is refused."""
        if video != video_id_for(video + ".npy"):
            raise InputError(f"{self.path}: video id {video!r} cannot name a file in the store (A-Z a-z 0-9 . _ -)")
        return self.path / f"{video}.npy"

    def read(self, video: str) -> np.ndarray:
        """The [T, D] clips of a video, memory-mapped: nothing is read before it is used."""
        try:
            features = np.load(self.file(video), mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as error:
            raise InputError(f"{self.where(video)}: unreadable feature file ({error})") from error
        return check_features(features, self.where(video))

    def write(self, video: str, features: np.ndarray) -> None:
        atomic.save_npy(self.file(video), features)
        self._ids.add(video)

    def append(self, record: ManifestRecord) -> None:
        atomic.append_line(self.path / MANIFEST, json.dumps(record.to_json()))

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
                record = ManifestRecord.from_json(json.loads(line), f"{manifest}:{number}")
            except (json.JSONDecodeError, TypeError) as error:
                if number == len(lines) and isinstance(error, json.JSONDecodeError):
                    break  # the torn last line of a crash
                raise InputError(f"{manifest}:{number}: corrupt manifest line ({error})") from error
            latest[record.video_id] = record
        return latest

    def spec(self) -> FeatureSpec | None:
        """The spec every stored video was extracted with; None for a store without features yet.
        A store of mixed specs cannot feed one model and is refused, naming what differs."""
        specs = {record.spec for record in self.records().values() if record.status == "ok"}
        if len(specs) > 1:
            first, *others = sorted(specs, key=repr)
            changed = "; ".join(", ".join(first.differences(other)) for other in others)
            raise InputError(
                f"{self.path}: holds features of {len(specs)} different specs ({changed}); use one store per spec"
            )
        return specs.pop() if specs else None
