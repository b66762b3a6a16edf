"""Features made elsewhere (CLIP, I3D, SlowFast from another toolkit's scripts), read into a feature store.

A folder holds one `<video>.npy` per video: [T, D], one row per clip, or [D, T] when the caller says the
files are transposed. Their spec says they were imported: backbone "imported", the user's label (such as
`clip-vit-b32`) in the layer field, their dimension, clips of one row, and `sample_fps` the rows per second,
or 0 where each video's rows spread evenly over its duration (read from the captions). Every file is
checked before the first is written, so a damaged one leaves the store as it was.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hscnet.common.errors import InputError
from hscnet.common.wording import count
from hscnet.extract.spec import FeatureSpec
from hscnet.extract.store import FeatureStore, ManifestRecord, video_id_for

IMPORTED = "imported"  # the backbone of features made elsewhere
LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def imported_spec(label: str, dim: int, seconds_per_row: float | None) -> FeatureSpec:
    """The spec of imported features; `seconds_per_row` None: each video's rows span its duration."""
    if not LABEL.fullmatch(label):
        raise InputError(f"--label {label!r}: name the features with letters, digits and . _ + - (e.g. clip-vit-b32)")
    if seconds_per_row is not None and not seconds_per_row > 0:
        raise InputError(f"--seconds-per-row {seconds_per_row}: must be above 0")
    rows_per_second = 1 / seconds_per_row if seconds_per_row else 0.0
    return FeatureSpec(backbone=IMPORTED, clip_len=1, stride=1, sample_fps=rows_per_second, layer=label,
                       weights=IMPORTED, pca="", dim=dim, dtype="float32")  # fmt: skip


def is_imported(spec: FeatureSpec | None) -> bool:
    return spec is not None and spec.backbone == IMPORTED


def read_feature_file(path: str | os.PathLike, *, transposed: bool = False, dim: int | None = None) -> np.ndarray:
    """A `.npy` file of features as float32 [T, D], or one line naming the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: feature file not found")
    try:
        with open(path, "rb") as handle:
            head = handle.read(6)
        array = np.load(path, allow_pickle=False)
    except ValueError:
        if head == b"\x93NUMPY" or head.startswith(b"\x80"):  # an object-dtype .npy, or a plain pickle
            raise InputError(f"{path}: a pickled array (Python objects), not numbers; save it with np.save") from None
        raise InputError(f"{path}: not a NumPy .npy file") from None
    except OSError as error:
        raise InputError(f"{path}: unreadable ({error})") from None
    if not isinstance(array, np.ndarray) or array.ndim != 2:
        shape = getattr(array, "shape", "?")
        raise InputError(f"{path}: an array of shape {shape}; features are 2-d, [T, D] (or [D, T] transposed)")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise InputError(f"{path}: an array of {array.dtype}, not numbers")
    features = np.ascontiguousarray(array.T if transposed else array, dtype=np.float32)
    if len(features) == 0:
        raise InputError(f"{path}: no rows (shape {tuple(array.shape)})")
    if dim is not None and features.shape[1] != dim:
        hint = " (are the files [D, T]? say so)" if features.shape[0] == dim else ""
        raise InputError(f"{path}: {features.shape[1]}-d features where {dim}-d are expected{hint}")
    bad = np.flatnonzero(~np.isfinite(features).all(axis=1))
    if len(bad):
        rows = ", ".join(str(row) for row in bad[:5]) + (", ..." if len(bad) > 5 else "")
        raise InputError(f"{path}: {count(len(bad), 'row')} of {len(features)} hold NaN or infinity (rows {rows})")
    return features


@dataclass
class ImportSummary:
    imported: int
    rows: int
    spec: FeatureSpec


def import_features(
    folder: str | os.PathLike,
    store: FeatureStore,
    *,
    label: str,
    transposed: bool = False,
    seconds_per_row: float | None = None,
    durations: dict[str, float] | None = None,
) -> ImportSummary:
    """Write every `.npy` of `folder` into `store` under imported features' spec. Seconds per row are given,
    or each video's duration (from `durations`, by video id) divided by its rows."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: folder of .npy feature files not found")
    files = sorted(path for path in folder.glob("*.npy") if not path.name.startswith("."))
    if not files:
        raise InputError(f"{folder}: no .npy feature files")
    if seconds_per_row is None and durations is None:
        raise InputError(f"{folder}: give the seconds a row covers (--seconds-per-row) or captions with durations")
    first = read_feature_file(files[0], transposed=transposed)
    spec = imported_spec(label, first.shape[1], seconds_per_row)
    stored = store.spec()
    if stored is not None and stored != spec:
        raise InputError(f"{store.path}: holds other features ({stored.describe()}); import into a new store")
    arrays: dict[str, tuple[Path, np.ndarray, float]] = {}
    for path in files:  # every file is checked before the first is written
        features = read_feature_file(path, transposed=transposed, dim=spec.dim)
        video = video_id_for(path)
        if seconds_per_row is not None:
            duration = len(features) * seconds_per_row
        elif video in durations:
            duration = durations[video]
        else:
            raise InputError(f"{path}: the captions give no duration for video {video!r}; give --seconds-per-row")
        arrays[video] = (path, features, duration)
    rows = 0
    for video, (path, features, duration) in arrays.items():
        store.write(video, features)
        store.append(ManifestRecord(video_id=video, source=str(path.resolve()), status="ok", spec=spec,
                                    decoder=IMPORTED, duration=float(duration), clips=len(features)))  # fmt: skip
        rows += len(features)
    return ImportSummary(len(arrays), rows, spec)
