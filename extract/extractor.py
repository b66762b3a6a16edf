"""One video to its features: the plain function every path runs.

`extract_video` probes one video, decodes its clips and encodes them; the Ray workers of
`pipeline/ray_workers.py`, `bin/extract` without Ray, the `Grounder` and the tests all call it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from hscnet.common.errors import first_line
from hscnet.extract.spec import FeatureSpec
from hscnet.extract.store import ManifestRecord
from hscnet.extract.video import VideoInfo, decode_clips, probe


def read_clips(path: str | os.PathLike, spec: FeatureSpec, info: VideoInfo, decoder: str) -> Iterator:
    """The video's clips, a chunk at a time: NVDEC's on the GPU (`extract/nvdec.py`), else decoded in software."""
    if decoder == "nvdec":
        from hscnet.extract.nvdec import decode_clips_nvdec  # torch: only where NVDEC reads

        return decode_clips_nvdec(path, spec, info)
    return decode_clips(path, spec, info, decoder=decoder)


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
    (a Ray decode task's stream), once the video has been probed; by default they are decoded here,
    with NVDEC where asked and possible, else in software (`record.decoder` says which read it).
    """
    started = time.time()
    if decoder == "nvdec" and decode is None:
        from hscnet.extract.nvdec import decoder_for  # torch: only where NVDEC is asked for

        decoder = decoder_for(path)
    record = ManifestRecord(
        video_id=video_id, source=str(Path(path).resolve()), status="failed", spec=spec, decoder=decoder
    )
    try:
        info = probe(path, decoder)
        record.fps, record.num_frames, record.duration = info.fps, info.num_frames, info.duration
        record.start, record.warning = info.start, info.ended_early()
        chunks = decode(info) if decode is not None else read_clips(path, spec, info, decoder)
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
